//! The audit beacon: a verifiable random function over the proposer's key (docs/adr/0003).
//!
//! Each block header carries `VRF(proposer's VRF key, chain_id || height)` with its proof
//! (schnorrkel's VRF on Ristretto25519). The output is unique per key and height, so no block
//! variant a proposer tries changes it; the audit draw of the receipts paid in the previous
//! block uses it. A validator's VRF key is derived from its consensus seed and registered with
//! it (genesis, `CreateValidator`).

use crate::crypto::SecretKey;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// The signing context (domain) of the beacon transcript.
const CONTEXT: &[u8] = opal_domains::label::AUDIT_BEACON.as_bytes();
/// What the verified output is hashed with to give the beacon's randomness.
const OUTPUT_LABEL: &[u8] = opal_domains::label::AUDIT_BEACON_OUTPUT.as_bytes();

/// A validator's VRF public key (a compressed Ristretto point).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, Default,
)]
pub struct VrfPublicKey(pub [u8; 32]);

impl std::fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfPublicKey({})", hex::encode(self.0))
    }
}

impl Serialize for VrfPublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for VrfPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        let b = hex::decode(&s).map_err(serde::de::Error::custom)?;
        let a: [u8; 32] = b
            .try_into()
            .map_err(|_| serde::de::Error::custom("a VRF key is 32 bytes"))?;
        Ok(VrfPublicKey(a))
    }
}

/// The beacon of one block: the VRF pre-output and its proof.
#[derive(Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct VrfBeacon {
    #[serde(with = "hex_array32")]
    pub preout: [u8; 32],
    #[serde(with = "hex_vec")]
    pub proof: Vec<u8>,
}

impl std::fmt::Debug for VrfBeacon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfBeacon({})", hex::encode(self.preout))
    }
}

/// Why a beacon does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrfError {
    #[error("malformed VRF {0}")]
    Malformed(&'static str),
    #[error("the beacon's proof does not verify for this key, chain and height")]
    BadProof,
}

fn transcript(chain_id: &str, height: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(chain_id.len() + 12);
    m.extend_from_slice(&(chain_id.len() as u32).to_le_bytes());
    m.extend_from_slice(chain_id.as_bytes());
    m.extend_from_slice(&height.to_le_bytes());
    m
}

#[allow(clippy::expect_used)] // 32 bytes always make a mini secret key
fn keypair(sk: &SecretKey) -> schnorrkel::Keypair {
    let seed = blake3::derive_key(opal_domains::derive::VRF_KEY, &sk.seed());
    // 32 bytes always make a mini secret key; `expect` cannot fail.
    schnorrkel::MiniSecretKey::from_bytes(&seed)
        .expect("32-byte seed")
        .expand_to_keypair(schnorrkel::ExpansionMode::Uniform)
}

impl SecretKey {
    /// This key's VRF public key (derived from the same seed).
    pub fn vrf_public_key(&self) -> VrfPublicKey {
        VrfPublicKey(keypair(self).public.to_bytes())
    }

    /// The beacon this key writes into the header of block `height` of `chain_id`.
    pub fn vrf_beacon(&self, chain_id: &str, height: u64) -> VrfBeacon {
        let kp = keypair(self);
        let ctx = schnorrkel::signing_context(CONTEXT);
        let (io, proof, _) = kp.vrf_sign(ctx.bytes(&transcript(chain_id, height)));
        VrfBeacon {
            preout: io.to_preout().to_bytes(),
            proof: proof.to_bytes().to_vec(),
        }
    }
}

impl VrfBeacon {
    /// Verify the beacon for `key` at (`chain_id`, `height`) and return its 32 random bytes.
    /// Deterministic: every validator gets the same bytes, and they depend only on the key,
    /// the chain and the height.
    pub fn verify(
        &self,
        key: &VrfPublicKey,
        chain_id: &str,
        height: u64,
    ) -> Result<[u8; 32], VrfError> {
        let pk = schnorrkel::PublicKey::from_bytes(&key.0)
            .map_err(|_| VrfError::Malformed("public key"))?;
        let preout = schnorrkel::vrf::VRFPreOut::from_bytes(&self.preout)
            .map_err(|_| VrfError::Malformed("output"))?;
        let proof = schnorrkel::vrf::VRFProof::from_bytes(&self.proof)
            .map_err(|_| VrfError::Malformed("proof"))?;
        let ctx = schnorrkel::signing_context(CONTEXT);
        let (io, _) = pk
            .vrf_verify(ctx.bytes(&transcript(chain_id, height)), &preout, &proof)
            .map_err(|_| VrfError::BadProof)?;
        Ok(io.make_bytes::<[u8; 32]>(OUTPUT_LABEL))
    }
}

mod hex_array32 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let v = hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_unique_and_the_proof_binds_key_chain_and_height() {
        let k = SecretKey::from_seed([5; 32]);
        let pk = k.vrf_public_key();
        let a = k.vrf_beacon("c", 7);
        let b = k.vrf_beacon("c", 7);
        // Proofs are randomized, the output is not: every variant gives the same randomness.
        assert_eq!(
            a.verify(&pk, "c", 7).unwrap(),
            b.verify(&pk, "c", 7).unwrap()
        );
        assert_eq!(a.preout, b.preout);
        assert_ne!(
            k.vrf_beacon("c", 8).verify(&pk, "c", 8).unwrap(),
            a.verify(&pk, "c", 7).unwrap()
        );
        assert_eq!(a.verify(&pk, "c", 8), Err(VrfError::BadProof));
        assert_eq!(a.verify(&pk, "d", 7), Err(VrfError::BadProof));
        let other = SecretKey::from_seed([6; 32]).vrf_public_key();
        assert_eq!(a.verify(&other, "c", 7), Err(VrfError::BadProof));
        // Another output with a valid-looking proof: refused.
        let mut forged = a.clone();
        forged.preout = k.vrf_beacon("c", 9).preout;
        assert!(forged.verify(&pk, "c", 7).is_err());
        // Garbage never panics.
        let junk = VrfBeacon {
            preout: [0xff; 32],
            proof: vec![1, 2, 3],
        };
        assert!(junk.verify(&pk, "c", 7).is_err());
        assert!(a.verify(&VrfPublicKey([0xff; 32]), "c", 7).is_err());
    }
}
