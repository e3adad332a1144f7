//! The client's IP address: the socket peer, or — only when the peer is a configured trusted
//! proxy — the last address the proxy appended to its header.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone)]
pub struct TrustedProxies {
    pub proxies: Vec<IpAddr>,
    pub header: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn from_request(req: &HttpRequest) -> ClientIp {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Some(trusted) = req.app_data::<web::Data<TrustedProxies>>() {
            if trusted.proxies.contains(&peer) {
                let forwarded = req
                    .headers()
                    .get(trusted.header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
                    .and_then(|last| last.trim().parse::<IpAddr>().ok());
                if let Some(ip) = forwarded {
                    return ClientIp(ip);
                }
            }
        }
        ClientIp(peer)
    }
}

impl FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientIp::from_request(req)))
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
