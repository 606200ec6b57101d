//! Uptime arithmetic (being written).
