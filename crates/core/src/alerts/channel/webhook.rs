//! Webhook channels: the [`Message`] as JSON POSTed to a URL with ureq (blocking, one
//! overall timeout covering connect, send and the answer). Redirects are not followed:
//! a POST redirected is a webhook misconfigured, and is said as such.

use std::io::Read;

use super::{chain, io_cause, network, setup, Cause, Delivered};
use crate::alerts::config::ChannelConfig;
use crate::alerts::message::Message;

/// How much of an error response's body is kept for the message.
const BODY_KEPT: u64 = 200;

pub(super) fn post(channel: &ChannelConfig, message: &Message) -> Result<Delivered, (Cause, bool)> {
    let url = channel
        .url
        .as_ref()
        .map(|u| u.get_ref().clone())
        .ok_or_else(|| setup("`url` is missing"))?;
    let shown = crate::engine::mask_url(&url);
    let body = serde_json::to_vec(message)
        .map_err(|e| setup(format!("cannot write the message as JSON: {e}")))?;
    let agent = ureq::AgentBuilder::new()
        .timeout(channel.timeout.0)
        .redirects(0)
        .user_agent(concat!("ostler/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut request = agent.post(&url).set("Content-Type", "application/json");
    if let Some(headers) = &channel.headers {
        for (name, value) in headers.get_ref() {
            request = request.set(name, value);
        }
    }
    match request.send_bytes(&body) {
        Ok(response) if (200..300).contains(&response.status()) => Ok(Delivered::Posted {
            url: shown,
            status: response.status(),
        }),
        Ok(response) => {
            let status = response.status();
            Err((
                Cause::Status {
                    url: shown,
                    status,
                    body: body_start(response),
                },
                false,
            ))
        }
        Err(ureq::Error::Status(status, response)) => Err((
            Cause::Status {
                url: shown,
                status,
                body: body_start(response),
            },
            status >= 500 || status == 408 || status == 429,
        )),
        Err(ureq::Error::Transport(t)) => Err(transport(&url, &shown, channel, &t)),
    }
}

/// The start of a response's body, on one line.
fn body_start(response: ureq::Response) -> String {
    let mut text = String::new();
    let _ = response
        .into_reader()
        .take(BODY_KEPT)
        .read_to_string(&mut text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a failure before any answer was.
fn transport(
    url: &str,
    shown: &str,
    channel: &ChannelConfig,
    t: &ureq::Transport,
) -> (Cause, bool) {
    use ureq::ErrorKind;
    let addr = url::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| shown.to_string());
    match t.kind() {
        ErrorKind::InvalidUrl | ErrorKind::UnknownScheme | ErrorKind::InsecureRequestHttpsOnly => {
            setup(format!("`url`: cannot POST to {shown}: {}", chain(t)))
        }
        ErrorKind::Dns => (
            Cause::Unreachable {
                addr,
                message: chain(t),
            },
            true,
        ),
        _ => match io_cause(t) {
            Some(io) => (network(&addr, io, channel.timeout.0, chain(t)), true),
            None => (
                Cause::Unreachable {
                    addr,
                    message: chain(t),
                },
                true,
            ),
        },
    }
}
