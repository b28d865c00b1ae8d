//! The `Host` and `Origin` checks of the HTTP transport (DNS-rebinding and cross-origin
//! protection), with the one parser of URLs' authorities they both use. Values are parsed
//! strictly (RFC 3986 / RFC 6454 shapes, nothing more), never compared as string prefixes: a
//! value that does not parse is refused.

/// A host as an authority names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A registered name, lower-cased (`localhost`).
    Name(String),
    V4(std::net::Ipv4Addr),
    V6(std::net::Ipv6Addr),
}

impl Host {
    /// `localhost`, 127.0.0.0/8 or ::1.
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Name(name) => name == "localhost",
            Host::V4(ip) => ip.is_loopback(),
            Host::V6(ip) => ip.is_loopback(),
        }
    }
}

/// `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: Host,
    pub port: Option<u16>,
}

/// An `Origin` header: scheme and authority, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub authority: Authority,
}

/// Parses `host[:port]` (a `Host` header, or the authority of an origin): a registered name of
/// letters, digits, `-` and `.` (labels of 1 to 63 characters), a dotted IPv4 address, or an
/// IPv6 address in brackets; a port of 1 to 5 digits up to 65535. No user information, no
/// path, no white space, no percent-encoding.
pub fn parse_authority(text: &str) -> Option<Authority> {
    if text.is_empty() || text.len() > 260 {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let close = rest.find(']')?;
        let ip: std::net::Ipv6Addr = rest[..close].parse().ok()?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(parse_port(after.strip_prefix(':')?)?),
        };
        (Host::V6(ip), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(parse_port(port)?)),
            None => (text, None),
        };
        (parse_host(host)?, port)
    };
    Some(Authority { host, port })
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_host(text: &str) -> Option<Host> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok {
        return None;
    }
    // all digits and dots: an IPv4 address, which must then be a valid one (no `127.1`)
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return name.parse().ok().map(Host::V4);
    }
    Some(Host::Name(name.to_ascii_lowercase()))
}

/// Parses an `Origin` header value: `scheme://authority` with scheme `http` or `https`,
/// exactly as browsers send it (no path, no trailing slash). `null` and anything else is
/// `None`.
pub fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    Some(Origin {
        scheme,
        authority: parse_authority(rest)?,
    })
}

/// Why a request is refused, or `None` when its `Host` and `Origin` may reach the endpoint.
/// `loopback_only`: the endpoint listens on a loopback address, so its `Host` must name a
/// loopback host (a DNS-rebinding page names its own). An `Origin`, when present, must always
/// be a loopback one: the endpoint has no authentication, and no browser page elsewhere may
/// drive it.
pub fn refusal(host: Option<&str>, origin: Option<&str>, loopback_only: bool) -> Option<String> {
    if loopback_only {
        match host.map(|h| parse_authority(h.trim())) {
            None => return Some("the request has no Host header".into()),
            Some(None) => return Some("the Host header is not a valid host[:port]".into()),
            Some(Some(a)) if !a.host.is_loopback() => {
                return Some("the Host header does not name this (loopback) server".into())
            }
            Some(Some(_)) => {}
        }
    }
    if let Some(origin) = origin {
        match parse_origin(origin.trim()) {
            None => return Some("the Origin header is not a valid http(s) origin".into()),
            Some(o) if !o.authority.host.is_loopback() => {
                return Some("the Origin is not a loopback origin".into())
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_pass() {
        for origin in [
            "http://localhost:8080",
            "http://LOCALHOST",
            "https://127.0.0.1:443",
            "http://127.0.0.2:1",
            "http://[::1]:3000",
            "http://localhost.:80",
        ] {
            assert_eq!(
                refusal(Some("127.0.0.1:1"), Some(origin), true),
                None,
                "{origin}"
            );
        }
    }

    #[test]
    fn hostile_origins_are_refused() {
        for origin in [
            "http://127.0.0.1:80.evil.com",
            "http://127.0.0.1.evil.com",
            "http://localhost.evil.com",
            "http://localhost@evil.com",
            "http://evil.com#@localhost",
            "http://evil.com?@localhost",
            "http://localhost:99999",
            "http://localhost:",
            "http://localhost:+80",
            "http://localhost:8080/",
            "http://[::1]evil.com",
            "http://[::1]:80:80",
            "http://127.1",
            "http://0x7f.0.0.1",
            "http://127.0.0.1%2eevil.com",
            "http://loc alhost",
            "http://localhost\u{2024}evil.com",
            "null",
            "file://localhost",
            "ftp://localhost",
            "localhost",
            "http://",
            "",
        ] {
            assert!(
                refusal(Some("127.0.0.1:1"), Some(origin), true).is_some(),
                "{origin:?} must be refused"
            );
        }
    }

    #[test]
    fn hostile_hosts_are_refused() {
        for host in ["127.0.0.1:8080", "localhost", "[::1]:1", "LocalHost:9"] {
            assert_eq!(refusal(Some(host), None, true), None, "{host}");
        }
        for host in [
            "127.0.0.1:80.evil.com",
            "127.0.0.1.evil.com",
            "localhost.evil.com:80",
            "evil.com",
            "user@localhost",
            "localhost:abc",
            "localhost:80/x",
            "[::1",
            "::1",
            "",
        ] {
            assert!(
                refusal(Some(host), None, true).is_some(),
                "{host:?} must be refused"
            );
        }
        assert!(refusal(None, None, true).is_some());
        // served on a non-loopback address: any well-formed Host, still a loopback Origin
        assert_eq!(refusal(Some("db.example:8080"), None, false), None);
        assert!(refusal(None, Some("http://evil.com"), false).is_some());
    }
}
