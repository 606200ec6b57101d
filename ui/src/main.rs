//! The Fleetdeck desktop views. A skeleton for now: the fleet, host, app and event views arrive
//! with the desktop issue.

use yew::prelude::*;

#[function_component(App)]
fn app() -> Html {
    html! {
        <main>
            <h1>{ "Fleetdeck" }</h1>
            <p>{ format!("Speaks agent wire v{}.", fleetdeck_proto::WIRE_VERSION) }</p>
        </main>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
