//! The named safety gates a runbook may write (and the engine inserts where a runbook forgot).

use serde::{Deserialize, Serialize};

/// A named safety gate, evaluated by the engine on fresh probes right before what it guards.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// Every node reports the same provider.
    ProvidersAgree,
    /// No node is configured for the target provider yet (the change has not begun, or was
    /// rolled back): running a migration on a fleet that already made it would re-key live nodes.
    NotOnTarget,
    /// Every node answers and is UP and ready on every load-balancer instance.
    PoolHealthy,
    /// Every node holds private.pem (mode 0600/0640, keystone-owned) and every node's public key
    /// is on every node.
    KeysEverywhere,
    /// Every node's staged (next) public key is already in every node's public repository, so a
    /// node may start signing with it.
    StagedKeysEverywhere,
    /// Every node holds the same, non-empty Fernet key repository.
    FernetKeysEverywhere,
    /// Taking the node out leaves at least one other server in every instance's pool; if not,
    /// a hard stop (draining it is an outage until it rejoins).
    PoolCapacity,
    /// The node is in maintenance on every load-balancer instance.
    OutOfPool,
    /// A token issued directly at the node is of the target format and validates there.
    ValidatedBeforeReadd,
    /// Every node of half A issued a token of the target provider directly and it validated
    /// there (after its last restart): checked right before the halves swap.
    ValidatedBeforeSwap,
    /// Re-adding the node would put two providers in the pool: a hard stop.
    MixedPool,
    /// The node is UP and ready on every load-balancer instance.
    InPool,
    /// Every node runs the target provider and is back in the pool.
    AllTarget,
}

impl Gate {
    pub fn name(&self) -> &'static str {
        match self {
            Gate::ProvidersAgree => "providers-agree",
            Gate::NotOnTarget => "not-on-target",
            Gate::PoolHealthy => "pool-healthy",
            Gate::KeysEverywhere => "keys-everywhere",
            Gate::FernetKeysEverywhere => "fernet-keys-everywhere",
            Gate::StagedKeysEverywhere => "staged-keys-everywhere",
            Gate::PoolCapacity => "pool-capacity",
            Gate::OutOfPool => "out-of-pool",
            Gate::ValidatedBeforeReadd => "validated-before-readd",
            Gate::ValidatedBeforeSwap => "validated-before-swap",
            Gate::MixedPool => "mixed-pool",
            Gate::InPool => "in-pool",
            Gate::AllTarget => "all-target",
        }
    }

    /// Gates about one node need a node scope; the others look at the whole fleet.
    pub fn per_node(&self) -> bool {
        matches!(
            self,
            Gate::OutOfPool
                | Gate::PoolCapacity
                | Gate::ValidatedBeforeReadd
                | Gate::MixedPool
                | Gate::InPool
        )
    }
}
