//! `--web.listen-address`: `HOST:PORT` as the Prometheus exporter-toolkit reads it.

/// A checked `--web.listen-address`: `HOST:PORT` where HOST is empty (every interface),
/// an IPv4 address, a bracketed IPv6 address or a host name, as Go's `net.Listen`
/// (and so every exporter-toolkit exporter) reads it. Names are resolved when binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: ListenHost,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenHost {
    /// `:PORT`: every IPv4 interface.
    Any,
    Ip(std::net::IpAddr),
    /// A host name such as `localhost`, resolved at bind time.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--web.listen-address: {0:?} is not an address like :10150, 127.0.0.1:10150, [::1]:10150 or localhost:10150"
)]
pub struct ListenAddrError(pub String);

impl ListenAddr {
    pub fn parse(s: &str) -> Result<ListenAddr, ListenAddrError> {
        let bad = || ListenAddrError(s.to_string());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (ip, port) = rest.split_once("]:").ok_or_else(bad)?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
            (ListenHost::Ip(ip.into()), port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            let host = if host.is_empty() {
                ListenHost::Any
            } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
                ListenHost::Ip(ip.into())
            } else if valid_host_name(host) {
                ListenHost::Name(host.to_string())
            } else {
                // A bare IPv6 address among others: its colons make the port ambiguous.
                return Err(bad());
            };
            (host, port)
        };
        // Digits only: `u16::from_str` would also take `+80`.
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let port = port.parse().map_err(|_| bad())?;
        Ok(ListenAddr { host, port })
    }

    /// The socket addresses to try, in order: IPv4 first for a name, as Go's listener
    /// picks it, so `localhost` means 127.0.0.1 wherever that exists.
    pub fn resolve(&self) -> std::io::Result<Vec<std::net::SocketAddr>> {
        use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
        Ok(match &self.host {
            ListenHost::Any => vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port))],
            ListenHost::Ip(ip) => vec![SocketAddr::new(*ip, self.port)],
            ListenHost::Name(name) => {
                let mut all: Vec<SocketAddr> =
                    (name.as_str(), self.port).to_socket_addrs()?.collect();
                all.sort_by_key(|a| a.is_ipv6());
                all.dedup();
                if all.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no address found",
                    ));
                }
                all
            }
        })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            ListenHost::Any => write!(f, ":{}", self.port),
            ListenHost::Ip(ip) => write!(f, "{}", std::net::SocketAddr::new(*ip, self.port)),
            ListenHost::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
fn valid_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_read_as_the_exporter_toolkit_reads_them() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let cases: &[(&str, ListenHost, u16)] = &[
            (":10150", ListenHost::Any, 10150),
            (
                "0.0.0.0:10150",
                ListenHost::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                10150,
            ),
            (
                "127.0.0.1:9",
                ListenHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                9,
            ),
            (
                "[::1]:10150",
                ListenHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                10150,
            ),
            (
                "[::]:0",
                ListenHost::Ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                0,
            ),
            (
                "localhost:10150",
                ListenHost::Name("localhost".into()),
                10150,
            ),
            (
                "metrics-1.example.org:65535",
                ListenHost::Name("metrics-1.example.org".into()),
                65535,
            ),
        ];
        for (text, host, port) in cases {
            let a = ListenAddr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((&a.host, a.port), (host, *port), "{text}");
            assert_eq!(a.to_string(), *text, "shown as typed");
        }
        for bad in [
            "",
            "nowhere",
            "localhost",
            ":",
            "localhost:",
            ":65536",
            ":-1",
            ":+80",
            "::1:10150",
            "[::1]",
            "[::1]10150",
            "[127.0.0.1]:1",
            "bad_name:1",
            "-x:1",
            "a..b:1",
            "host:http",
            " :1",
        ] {
            let e = ListenAddr::parse(bad).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!(
                    "--web.listen-address: {bad:?} is not an address like :10150, 127.0.0.1:10150, [::1]:10150 or localhost:10150"
                )
            );
        }
    }

    #[test]
    fn listen_addresses_resolve_ipv4_first() {
        let any = ListenAddr::parse(":10150").unwrap().resolve().unwrap();
        assert_eq!(any, vec!["0.0.0.0:10150".parse().unwrap()]);
        let v6 = ListenAddr::parse("[::1]:7").unwrap().resolve().unwrap();
        assert_eq!(v6, vec!["[::1]:7".parse().unwrap()]);
        // `localhost` is in every /etc/hosts; 127.0.0.1 comes before ::1 when both are.
        let local = ListenAddr::parse("localhost:7").unwrap().resolve().unwrap();
        assert_eq!(local[0], "127.0.0.1:7".parse().unwrap(), "{local:?}");
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }
}
