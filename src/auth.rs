//! Webhook authentication (docs/senders.md): the expected secret per printer,
//! constant-time comparison, and the local-network rule when no secret is set.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Why a webhook was refused; every variant is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing secret")]
    Missing,
    #[error("wrong secret")]
    Wrong,
    #[error(
        "no secret is configured, so only local-network senders are accepted; \
         set auth.secret to accept webhooks from the internet"
    )]
    NotLocal,
}

/// Checks the secrets a request presented against the expected one: every
/// one presented must be right (a wrong extra credential is never ignored).
///
/// `senders` are the peer address and any addresses a proxy forwarded for;
/// with no secret configured every one of them must be local.
pub fn check(expected: &Secret, presented: &[&str], senders: &[IpAddr]) -> Result<(), AuthError> {
    if expected.is_empty() {
        return if senders.iter().all(|ip| is_local(*ip)) {
            Ok(())
        } else {
            Err(AuthError::NotLocal)
        };
    }
    if presented.is_empty() {
        return Err(AuthError::Missing);
    }
    let want = Sha256::digest(expected.expose().as_bytes());
    // Compare every candidate, so timing does not tell which one failed.
    let mut ok = subtle::Choice::from(1);
    for p in presented {
        ok &= Sha256::digest(p.as_bytes()).ct_eq(&want);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

/// Loopback, private (RFC 1918 / unique local) and link-local addresses.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
        },
    }
}

/// The secret in an `Authorization: Bearer <secret>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn secrets() {
        let s = Secret::new("s3cret");
        assert_eq!(check(&s, &[], &[ip("127.0.0.1")]), Err(AuthError::Missing));
        assert_eq!(
            check(&s, &["nope"], &[ip("127.0.0.1")]),
            Err(AuthError::Wrong)
        );
        assert_eq!(check(&s, &["s3cret"], &[ip("8.8.8.8")]), Ok(()));
        assert_eq!(
            check(&s, &["nope", "s3cret"], &[ip("8.8.8.8")]),
            Err(AuthError::Wrong),
            "every credential presented must be right"
        );
        assert_eq!(check(&s, &["s3cret", "s3cret"], &[ip("8.8.8.8")]), Ok(()));
        assert_eq!(check(&s, &["s3cret\0"], &[]), Err(AuthError::Wrong));
        assert_eq!(check(&s, &["S3CRET"], &[]), Err(AuthError::Wrong));
    }

    #[test]
    fn without_a_secret_only_local_senders() {
        let none = Secret::default();
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.5",
            "::1",
            "fd00::1",
            "::ffff:192.168.1.2",
            "fe80::1",
        ] {
            assert_eq!(check(&none, &[], &[ip(local)]), Ok(()), "{local}");
        }
        for public in [
            "8.8.8.8",
            "100.64.0.1",
            "2001:db8::1",
            "::ffff:1.1.1.1",
            "172.32.0.1",
        ] {
            assert_eq!(
                check(&none, &[], &[ip(public)]),
                Err(AuthError::NotLocal),
                "{public}"
            );
        }
        assert_eq!(
            check(&none, &[], &[ip("127.0.0.1"), ip("203.0.113.9")]),
            Err(AuthError::NotLocal),
            "a local proxy forwarding for a public sender is not local"
        );
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
