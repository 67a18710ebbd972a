//! Access guards for the admin API.
//!
//! Until accounts and sessions exist (the identity feature), the admin API — tenants, settings, system
//! information — answers only requests that come from this machine (a loopback peer address). An
//! administrator who binds Enclave to `0.0.0.0` therefore does not expose an unauthenticated admin API
//! to the network. Note that a reverse proxy on the same machine makes every request look local.

use std::future::{ready, Ready};

use actix_web::{FromRequest, HttpRequest};

use crate::error::{ApiError, Code};

/// Extracting this succeeds only for requests from a loopback address.
pub struct LocalAdmin;

impl FromRequest for LocalAdmin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let local = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        ready(if local {
            Ok(LocalAdmin)
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                "the admin API answers only requests from the Enclave host itself until accounts are set up",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn extract(peer: &str) -> Result<LocalAdmin, ApiError> {
        let (req, mut payload) = TestRequest::default()
            .peer_addr(peer.parse().expect("addr"))
            .to_http_parts();
        futures_util::FutureExt::now_or_never(LocalAdmin::from_request(&req, &mut payload))
            .expect("ready future")
    }

    #[test]
    fn only_loopback_peers_reach_the_admin_api() {
        assert!(extract("127.0.0.1:5000").is_ok());
        assert!(extract("[::1]:5000").is_ok());
        for remote in ["10.1.2.3:5000", "192.168.1.20:443", "[2001:db8::1]:80"] {
            let err = extract(remote).err().expect("refused");
            assert_eq!(err.code, Code::Forbidden, "{remote}");
        }
    }
}
