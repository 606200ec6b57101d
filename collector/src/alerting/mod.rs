//! Alerting (being written).
