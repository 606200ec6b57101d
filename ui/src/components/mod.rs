//! Small reusable pieces: status badges, the SVG line chart, the uptime bar, the confirm dialog,
//! the command palette and shortcuts help, the silence menu.

pub mod chart;
pub mod confirm;
pub mod palette;
pub mod silence;
pub mod status;
pub mod uptime;
