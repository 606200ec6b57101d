//! The Fleetdeck collector. A skeleton for now: it polls and subscribes to agents, keeps history in
//! SQLite and alerts once the collector issue lands. Today it only names the wire version it speaks.

/// The agent wire version this collector understands.
pub fn supported_wire_version() -> u32 {
    fleetdeck_proto::WIRE_VERSION
}
