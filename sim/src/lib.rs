//! Virtual Fleetdeck agents (being written).
