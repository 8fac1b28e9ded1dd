//! A real SMTP server on loopback that keeps what it receives: enough of RFC 5321
//! for lettre's client (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA with dot-unstuffing,
//! RSET, NOOP, QUIT), so an email channel is tested over a real connection. It can
//! also refuse every mail with a chosen code, greet nobody (to test timeouts), or not
//! be there at all.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::loopback::{Loopback, Refusing, Seen};

/// One mail as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM:<...>`), without the brackets.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent after DATA (headers, blank line, body), dot-unstuffed,
    /// with CRLF line ends turned into LF.
    pub data: String,
    /// `(username, password)` when the client logged in.
    pub login: Option<(String, String)>,
}

impl Mail {
    /// The value of header `name` (first one, unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\n\n").next().unwrap_or("");
        let mut found: Option<String> = None;
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(f) = &mut found {
                    f.push(' ');
                    f.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_string());
                }
            }
        }
        found
    }

    /// What follows the headers, as sent.
    pub fn body(&self) -> &str {
        self.data.split_once("\n\n").map(|(_, b)| b).unwrap_or("")
    }

    /// The body as its writer wrote it: decoded when it was sent quoted-printable
    /// (as lettre does when a line is longer than 76 characters).
    pub fn text(&self) -> String {
        let quoted = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if quoted {
            decode_quoted_printable(self.body())
        } else {
            self.body().to_string()
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Accept,
    /// Every `MAIL FROM` answered with this code.
    Refuse(u16),
    /// Connections are held open and never greeted.
    Silent,
    /// Every line answered after this wait.
    Slow(Duration),
}

/// A loopback SMTP server for one test; stops when dropped.
pub struct SmtpSink {
    server: Option<Loopback<Mail>>,
    /// For [`SmtpSink::down`]: the port held so that nothing listens on it.
    _down: Option<Refusing>,
    port: u16,
}

impl SmtpSink {
    /// A sink that takes every mail.
    pub fn start() -> SmtpSink {
        SmtpSink::with(Behaviour::Accept)
    }

    /// A sink that answers every `MAIL FROM` with `code` (421 or 451 for a server that
    /// is busy, 550 or 554 for one that will never take it).
    pub fn refusing(code: u16) -> SmtpSink {
        SmtpSink::with(Behaviour::Refuse(code))
    }

    /// A sink that accepts connections and never says a word.
    pub fn silent() -> SmtpSink {
        SmtpSink::with(Behaviour::Silent)
    }

    /// A sink that takes every mail but waits `each` before every line it answers: no
    /// single answer is late, the whole conversation is.
    pub fn slow(each: Duration) -> SmtpSink {
        SmtpSink::with(Behaviour::Slow(each))
    }

    /// No server: an address on which connections are refused.
    pub fn down() -> SmtpSink {
        let down = Refusing::bind();
        SmtpSink {
            server: None,
            port: down.port(),
            _down: Some(down),
        }
    }

    fn with(behaviour: Behaviour) -> SmtpSink {
        let server = Loopback::start(move |stream, seen| {
            let _ = converse(stream, seen, behaviour);
        });
        let port = server.addr().port();
        SmtpSink {
            server: Some(server),
            _down: None,
            port,
        }
    }

    /// `127.0.0.1:PORT`, as a channel's `smtp` is written.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The mails received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.server
            .as_ref()
            .map(Loopback::items)
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until `n` mails have come; the mails by then.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        self.server
            .as_ref()
            .map(|s| s.wait_for(n, timeout))
            .unwrap_or_default()
    }
}

fn converse(stream: TcpStream, seen: &Seen<Mail>, behaviour: Behaviour) -> std::io::Result<()> {
    if let Behaviour::Silent = behaviour {
        seen.hold(stream);
        return Ok(());
    }
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut say = |text: &str| {
        if let Behaviour::Slow(each) = behaviour {
            std::thread::sleep(each);
        }
        out.write_all(format!("{text}\r\n").as_bytes())
    };
    say("220 sink.test ESMTP ostler test sink")?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut login = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                say("250-sink.test greets you")?;
                say("250-8BITMIME")?;
                say("250-AUTH PLAIN")?;
                say("250 SMTPUTF8")?;
            }
            "HELO" => say("250 sink.test")?,
            "AUTH" => {
                let mut parts = command.split_whitespace().skip(1);
                let (mechanism, initial) = (parts.next().unwrap_or(""), parts.next());
                if !mechanism.eq_ignore_ascii_case("PLAIN") {
                    say("504 5.5.4 only PLAIN here")?;
                    continue;
                }
                let response = match initial {
                    Some(r) => r.to_string(),
                    None => {
                        say("334 ")?;
                        let mut r = String::new();
                        lines.read_line(&mut r)?;
                        r.trim().to_string()
                    }
                };
                // "authzid \0 user \0 password"
                let decoded = decode_base64(&response).unwrap_or_default();
                let fields: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
                if let [_, user, password] = fields.as_slice() {
                    login = Some((
                        String::from_utf8_lossy(user).into_owned(),
                        String::from_utf8_lossy(password).into_owned(),
                    ));
                    say("235 2.7.0 authenticated")?;
                } else {
                    say("501 5.5.2 cannot decode the PLAIN response")?;
                }
            }
            "MAIL" => match behaviour {
                Behaviour::Refuse(code) => {
                    let class = if code < 500 { 4 } else { 5 };
                    say(&format!("{code} {class}.7.1 the sink refuses this mail"))?;
                }
                _ => {
                    from = Some(address(command));
                    to.clear();
                    say("250 2.1.0 sender ok")?;
                }
            },
            "RCPT" => {
                if from.is_none() {
                    say("503 5.5.1 MAIL first")?;
                } else {
                    to.push(address(command));
                    say("250 2.1.5 recipient ok")?;
                }
            }
            "DATA" => {
                if to.is_empty() {
                    say("503 5.5.1 RCPT first")?;
                    continue;
                }
                say("354 end with <CRLF>.<CRLF>")?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l)? == 0 {
                        return Ok(());
                    }
                    let l = l.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(l));
                    data.push('\n');
                }
                let n = seen.count() + 1;
                seen.record(Mail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    login: login.clone(),
                });
                say(&format!("250 2.0.0 queued as sink-{n}"))?;
            }
            "RSET" => {
                from = None;
                to.clear();
                say("250 2.0.0 reset")?;
            }
            "NOOP" => say("250 2.0.0 ok")?,
            "QUIT" => {
                say("221 2.0.0 bye")?;
                return Ok(());
            }
            _ => say("502 5.5.2 not implemented by the sink")?,
        }
    }
}

/// The address in `MAIL FROM:<a@b> SIZE=...` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    match (command.find('<'), command.find('>')) {
        (Some(start), Some(end)) if start < end => command[start + 1..end].to_string(),
        _ => command
            .split_once(':')
            .map(|(_, a)| a.trim().to_string())
            .unwrap_or_default(),
    }
}

/// Quoted-printable (RFC 2045): `=` at a line's end joins it to the next, `=XX` is a
/// byte.
fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::new();
    for line in text.split_inclusive('\n') {
        // A soft break's `=` and line end go; a hard line keeps its end.
        let line = line
            .trim_end_matches('\n')
            .strip_suffix('=')
            .unwrap_or(line);
        let raw = line.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (raw[i], hex) {
                (b'=', Some(b)) => {
                    bytes.push(b);
                    i += 3;
                }
                (c, _) => {
                    bytes.push(c);
                    i += 1;
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Standard base64 (with or without padding), as AUTH PLAIN sends it.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_what_auth_plain_sends() {
        // "\0alice\0s3cret"
        assert_eq!(
            decode_base64("AGFsaWNlAHMzY3JldA==").unwrap(),
            b"\0alice\0s3cret"
        );
    }

    #[test]
    fn headers_are_read_unfolded_and_the_body_after_the_blank_line() {
        let mail = Mail {
            from: String::new(),
            to: vec![],
            data: "Subject: a long\n  subject\nTo: x@y\n\nline 1\nline 2\n".into(),
            login: None,
        };
        assert_eq!(mail.header("subject").as_deref(), Some("a long subject"));
        assert_eq!(mail.header("to").as_deref(), Some("x@y"));
        assert_eq!(mail.body(), "line 1\nline 2\n");
    }

    #[test]
    fn quoted_printable_joins_soft_breaks_and_decodes_bytes() {
        assert_eq!(
            decode_quoted_printable("a long=\n line =3D ok\nnext\n"),
            "a long line = ok\nnext\n"
        );
    }
}
