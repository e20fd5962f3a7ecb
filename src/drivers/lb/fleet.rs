//! The fleet's load balancers: the instances of its inventory, each behind `LoadBalancer`
//! (HAProxy's runtime API today), and the lb actions run on all of them.

use super::haproxy::Haproxy;
use super::{LoadBalancer, drain, maint, read_all, ready};
use crate::drivers::{DResult, Done, Fleet};
use crate::engine::action::Lb;
use crate::engine::facts::*;
use std::collections::BTreeMap;

impl Fleet {
    pub(in crate::drivers) async fn run_lb(&self, spec: &Lb) -> DResult<Done> {
        match spec {
            Lb::Drain { node, timeout_secs } => self.lb_drain(node, *timeout_secs).await,
            Lb::Ready { node, timeout_secs } => self.lb_ready(node, *timeout_secs).await,
            Lb::Maint { node } => self.lb_maint(node).await,
            Lb::Swap {
                a,
                b,
                drain_secs,
                up_secs,
            } => {
                super::swap::swap(
                    &self.load_balancers(),
                    a,
                    b,
                    *drain_secs,
                    *up_secs,
                    &self.guard.order,
                )
                .await
            }
        }
    }

    /// Every load-balancer instance of the inventory, in inventory order.
    pub fn load_balancers(&self) -> Vec<Haproxy<'_>> {
        self.inv
            .load_balancers
            .iter()
            .map(|lb| Haproxy::new(self, lb))
            .collect()
    }

    /// Read every load-balancer instance: rows for every node, and the instances that failed.
    pub async fn read_lbs(&self) -> (Vec<LbServer>, Vec<String>) {
        read_all(&self.load_balancers()).await
    }

    /// How every instance would come through a reload, read from its configuration file.
    pub async fn read_reload_facts(&self) -> BTreeMap<String, ReloadFacts> {
        let lbs = self.load_balancers();
        futures::future::join_all(
            lbs.iter()
                .map(|lb| async { (lb.name().to_string(), lb.reload_facts().await) }),
        )
        .await
        .into_iter()
        .collect()
    }

    /// A pool breach repaired: maint wherever the node is not in maint, read back.
    pub(in crate::drivers) async fn lb_maint(&self, node: &str) -> DResult<Done> {
        maint(&self.load_balancers(), node).await
    }

    pub(in crate::drivers) async fn lb_drain(
        &self,
        node: &str,
        timeout_secs: u64,
    ) -> DResult<Done> {
        drain(&self.load_balancers(), node, timeout_secs).await
    }

    /// Re-add (see `ready`), ordered against the pool guard's reverts by its lock.
    pub(in crate::drivers) async fn lb_ready(
        &self,
        node: &str,
        timeout_secs: u64,
    ) -> DResult<Done> {
        ready(
            &self.load_balancers(),
            node,
            timeout_secs,
            &self.guard.order,
        )
        .await
    }
}
