fn main() {
    eprintln!(
        "fleetdeck-collector {} is not built yet (agent wire v{}); see the collector issue",
        env!("CARGO_PKG_VERSION"),
        fleetdeck_collector::supported_wire_version()
    );
    std::process::exit(2);
}
