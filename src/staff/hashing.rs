//! Bounded argon2id: every password and recovery-code hash in the process runs here.
//!
//! An argon2id check needs its whole working memory (19 MiB at the minimum cost) at once.
//! Computed freely on whichever blocking thread is free, each check allocated that memory anew
//! and the allocator kept it per thread, so a burst of failed sign-ins grew the process by
//! gigabytes. Here at most one hash per core runs at a time (the rest wait for a permit: the
//! back-pressure a flood of sign-ins should get), and each permit owns one preallocated block
//! buffer that is reused for every hash it computes, so memory stays at permits × buffer.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, LazyLock, Mutex};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// No stored hash may ask for more working memory than this (1 GiB): a buffer is kept per
/// permit, and a corrupt or hostile hash must not make the process allocate without bound.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;

struct Pool {
    permits: Arc<Semaphore>,
    /// Block buffers not in use; at most one per permit ever exists.
    buffers: Mutex<Vec<Vec<Block>>>,
}

/// One hash at a time per core (at least 1, at most 4: more gains nothing but memory).
pub fn concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

static POOL: LazyLock<Pool> = LazyLock::new(|| Pool {
    permits: Arc::new(Semaphore::new(concurrency())),
    buffers: Mutex::new(Vec::new()),
});

/// Runs `work` with a block buffer of at least `blocks` blocks, on a blocking thread, once a
/// permit is free. The permit travels with the blocking task, so a caller that gives up
/// (a client that disconnects) does not free its slot before the hash really ends.
async fn with_buffer<T: Send + 'static>(
    blocks: usize,
    work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
) -> anyhow::Result<T> {
    let permit = POOL
        .permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| anyhow::anyhow!("the hashing pool is closed"))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut buffer = POOL
            .buffers
            .lock()
            .ok()
            .and_then(|mut b| b.pop())
            .unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let out = work(&mut buffer[..blocks]);
        if let Ok(mut pool) = POOL.buffers.lock() {
            pool.push(buffer);
        }
        out
    })
    .await
    .map_err(|e| anyhow::anyhow!("a hashing task failed: {e}"))
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Cost {
    fn params(self, output_len: Option<usize>) -> anyhow::Result<Params> {
        if self.memory_kib > MAX_MEMORY_KIB {
            anyhow::bail!("argon2 memory {} KiB is above the limit", self.memory_kib);
        }
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            output_len,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))
    }
}

/// Hashes `secret` with a fresh salt; returns the PHC string (`$argon2id$v=19$m=…`).
pub async fn hash(secret: Vec<u8>, cost: Cost) -> anyhow::Result<String> {
    let params = cost.params(None)?;
    let blocks = params.block_count();
    with_buffer(blocks, move |buffer| -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            hasher
                .hash_password_into_with_memory(&secret, salt_raw, out, &mut *buffer)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)
                .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    })
    .await?
}

/// Checks `secret` against a stored PHC string, with the parameters it carries. An
/// unreadable hash is an error (not a quiet "no").
pub async fn verify(secret: Vec<u8>, phc: String) -> anyhow::Result<bool> {
    let (algorithm, version, params, salt, expected) = {
        let parsed =
            PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
        let algorithm = Algorithm::try_from(parsed.algorithm)
            .map_err(|e| anyhow::anyhow!("stored hash algorithm: {e}"))?;
        let version = Version::try_from(parsed.version.unwrap_or(0x13))
            .map_err(|e| anyhow::anyhow!("stored hash version: {e}"))?;
        let params =
            Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash params: {e}"))?;
        let mut salt = [0u8; 64];
        let salt_len = parsed
            .salt
            .ok_or_else(|| anyhow::anyhow!("stored hash has no salt"))?
            .decode_b64(&mut salt)
            .map_err(|e| anyhow::anyhow!("stored hash salt: {e}"))?
            .len();
        let expected = parsed
            .hash
            .ok_or_else(|| anyhow::anyhow!("stored hash has no output"))?;
        (
            algorithm,
            version,
            params,
            salt[..salt_len].to_vec(),
            expected.as_bytes().to_vec(),
        )
    };
    // The same ceiling as for new hashes.
    Cost {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    }
    .params(Some(expected.len()))?;
    let blocks = params.block_count();
    with_buffer(blocks, move |buffer| -> anyhow::Result<bool> {
        let hasher = Argon2::new(algorithm, version, params);
        let mut out = vec![0u8; expected.len()];
        hasher
            .hash_password_into_with_memory(&secret, &salt, &mut out, &mut *buffer)
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
        Ok(bool::from(out.ct_eq(&expected)))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    const COST: Cost = Cost {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    #[tokio::test]
    async fn hashes_match_the_argon2_crate_both_ways() {
        let phc = hash(b"tangerine elephant violin".to_vec(), COST)
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // The crate's own verifier accepts ours…
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"tangerine elephant violin", &parsed)
            .is_ok());
        // …and ours accepts the crate's, with other parameters too.
        let salt = SaltString::generate(&mut OsRng);
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8_192, 3, 2, None).unwrap(),
        )
        .hash_password(b"tangerine elephant violin", &salt)
        .unwrap()
        .to_string();
        assert!(verify(b"tangerine elephant violin".to_vec(), other.clone())
            .await
            .unwrap());
        assert!(!verify(b"tangerine elephant viola".to_vec(), other)
            .await
            .unwrap());
        assert!(!verify(b"tangerine elephant viola".to_vec(), phc)
            .await
            .unwrap());
        assert!(verify(b"x".to_vec(), "not a hash".into()).await.is_err());
    }

    #[tokio::test]
    async fn no_more_buffers_than_permits_however_many_hash_at_once() {
        let tasks: Vec<_> = (0..12)
            .map(|i| tokio::spawn(hash(format!("password {i}").into_bytes(), COST)))
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let buffers = POOL.buffers.lock().unwrap().len();
        assert!(
            (1..=concurrency()).contains(&buffers),
            "{buffers} buffers for {} permits",
            concurrency()
        );
    }
}
