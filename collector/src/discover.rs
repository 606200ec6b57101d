//! Tailscale discovery (being written).
