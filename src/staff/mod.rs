//! Staff credentials, apart from any HTTP: passwords (`password`: the policy, argon2id hashes
//! through the bounded pool in `hashing`), two-factor sign-in (`totp`: RFC 6238 codes and
//! recovery codes) and the sealed storage of two-factor seeds (`seed_box`). The console's
//! sign-in pages and the `coinfront staff` command both use these.

pub mod hashing;
pub mod password;
pub mod seed_box;
pub mod totp;
