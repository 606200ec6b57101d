//! Small reusable pieces: status badges, the SVG line chart, the uptime bar, the confirm dialog.

pub mod chart;
pub mod confirm;
pub mod status;
pub mod uptime;
