//! What the agent and the collector share at their edge: [`listen`], the bind policy (loopback and
//! Tailscale only unless told otherwise), and [`secret`], tokens read from files of mode 0600.

#![forbid(unsafe_code)]

pub mod listen;
pub mod secret;
