//! Podman's container states that the Docker API does not have. Podman's compatible API (4.x)
//! answers `"stopped"` (and older ones `"stopping"`) as a container's state for a moment while it
//! goes down; bollard's models know only Docker's states, so the whole answer fails to read (an
//! inspect during a crash, a listing while any container stops: bollard#293, #701). Those two
//! calls are then made again here, read as JSON, the state mapped to Docker's word for it
//! (`stopped` → `exited`, `stopping` → `running`, as later podman releases map them) and read
//! into bollard's models: the rest of the agent sees the engine as Docker would answer.

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// An answer larger than this is not an inspect or a listing this agent can use.
const MAX_BODY: usize = 16 << 20;

/// Whether `e` is bollard failing to read a state word it does not know.
pub fn is_unknown_state(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::JsonDataError { message, .. }
        if message.contains("unknown variant"))
}

/// Docker's word for a podman-only state word; others unchanged.
fn docker_state(state: &str) -> Option<&'static str> {
    match state {
        "stopped" => Some("exited"),
        "stopping" => Some("running"),
        _ => None,
    }
}

fn map_state(slot: Option<&mut Value>) {
    if let Some(v) = slot {
        if let Some(docker) = v.as_str().and_then(docker_state) {
            *v = Value::from(docker);
        }
    }
}

/// `GET /containers/NAME/json`, read with podman's states mapped.
pub async fn inspect(socket: &str, name: &str) -> Result<ContainerInspectResponse, String> {
    let path = format!("/containers/{}/json", urlencode(name));
    let mut v = get_json(socket, &path).await?;
    map_state(v.pointer_mut("/State/Status"));
    serde_json::from_value(v).map_err(|e| format!("inspect of {name:?} does not read: {e}"))
}

/// `GET /containers/json[?all=1]`, read with podman's states mapped.
pub async fn list(socket: &str, all: bool) -> Result<Vec<ContainerSummary>, String> {
    let path = if all {
        "/containers/json?all=1"
    } else {
        "/containers/json"
    };
    let mut v = get_json(socket, path).await?;
    for c in v.as_array_mut().into_iter().flatten() {
        map_state(c.get_mut("State"));
    }
    serde_json::from_value(v).map_err(|e| format!("the container listing does not read: {e}"))
}

/// One GET on the engine at `socket` (`unix:///path` or `tcp://`/`http://host:port`), its 2xx
/// body as JSON.
async fn get_json(socket: &str, path: &str) -> Result<Value, String> {
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let call = async {
        let response = if let Some(file) = socket.strip_prefix("unix://") {
            let stream = tokio::net::UnixStream::connect(file)
                .await
                .map_err(|e| format!("cannot connect to {socket}: {e}"))?;
            send(stream, request).await?
        } else {
            let addr = socket
                .trim_start_matches("tcp://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {socket}: {e}"))?;
            send(stream, request).await?
        };
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading {path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{path} answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path} is not JSON: {e}"))
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(super::REQUEST_TIMEOUT_SECS),
        call,
    )
    .await
    .map_err(|_| format!("{path} took longer than {} s", super::REQUEST_TIMEOUT_SECS))?
}

async fn send<S>(
    stream: S,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with the engine failed: {e}"))?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("the engine did not answer: {e}"))
}

/// A container name or id as one path segment.
fn urlencode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_states_read_as_dockers() {
        let mut v: Value = serde_json::json!({"State": {"Status": "stopped", "Running": false}});
        map_state(v.pointer_mut("/State/Status"));
        assert_eq!(v["State"]["Status"], "exited");
        let mut v = serde_json::json!([{"State": "stopping"}, {"State": "running"}, {}]);
        for c in v.as_array_mut().into_iter().flatten() {
            map_state(c.get_mut("State"));
        }
        assert_eq!(v[0]["State"], "running");
        assert_eq!(v[1]["State"], "running");
        let listed: Vec<ContainerSummary> = serde_json::from_value(v).expect("reads");
        assert_eq!(listed.len(), 3);
        // What bollard itself says of a podman-only word.
        let e = serde_json::from_value::<ContainerSummary>(serde_json::json!({"State": "stopped"}))
            .expect_err("bollard does not know it");
        let e = bollard::errors::Error::JsonDataError {
            message: e.to_string(),
            column: 0,
        };
        assert!(is_unknown_state(&e));
        assert_eq!(urlencode("web_1/../x"), "web_1%2F..%2Fx");
    }
}
