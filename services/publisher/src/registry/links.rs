//! Node connection figures from the gateways (`sb.gateway.nodes.<gateway_id>`): the newest
//! snapshot of every gateway (its pages), merged per node. A page replaces the same page of the
//! gateway's previous snapshot and pages past the new page count are dropped; a page not
//! renewed within its `stale_after_ms` (three report intervals) is dropped too, so figures of
//! a gateway that died disappear instead of standing still.

use std::collections::BTreeMap;
use std::time::Duration;

use protocol::nodes::{NodeLink, NodeLinksReport};
use protocol::streams::NodeNetwork;
use tokio::time::Instant;

/// Most gateways whose snapshots are kept; snapshots of further gateways are ignored until
/// one goes stale. Far above any real cluster, it only bounds what a broken sender costs.
const MAX_GATEWAYS: usize = 1_000;

/// One page of a gateway's newest snapshot.
#[derive(Debug)]
struct Page {
    received: Instant,
    stale_after: Duration,
    nodes: BTreeMap<String, NodeLink>,
}

/// Every live gateway's node connection figures: its pages by index.
#[derive(Debug, Default)]
pub(crate) struct Links {
    gateways: BTreeMap<String, BTreeMap<u32, Page>>,
}

impl Links {
    /// Replaces `report.gateway_id`'s snapshot with `report`, received at `now`; keeps at most
    /// `max_nodes` of its nodes. Returns false when the snapshot was ignored (too many gateways).
    pub(crate) fn observe(
        &mut self,
        report: NodeLinksReport,
        now: Instant,
        max_nodes: usize,
    ) -> bool {
        if !self.gateways.contains_key(&report.gateway_id) && self.gateways.len() >= MAX_GATEWAYS {
            return false;
        }
        let pages = report.pages.max(1);
        if report.page >= pages {
            return false;
        }
        let stale_after = Duration::from_millis(report.stale_after_ms());
        let nodes = report
            .nodes
            .into_iter()
            .take(max_nodes)
            .map(|link| (link.node_id.clone(), link))
            .collect();
        let gateway = self.gateways.entry(report.gateway_id).or_default();
        gateway.insert(
            report.page,
            Page {
                received: now,
                stale_after,
                nodes,
            },
        );
        // The snapshot shrank: its former last pages are gone.
        gateway.retain(|index, _| *index < pages);
        true
    }

    /// Drops the pages not renewed in time, and gateways left without pages; returns how
    /// many gateways were dropped.
    pub(crate) fn sweep(&mut self, now: Instant) -> usize {
        let before = self.gateways.len();
        self.gateways.retain(|_, pages| {
            pages
                .retain(|_, page| now.saturating_duration_since(page.received) <= page.stale_after);
            !pages.is_empty()
        });
        before - self.gateways.len()
    }

    /// The figures of `node_id` merged over the gateways: connections and message counts
    /// summed, `rtt_ms` the connection-weighted mean of the gateways' smoothed RTTs.
    /// `None` when no gateway reports a connection of it.
    pub(crate) fn network_of(&self, node_id: &str) -> Option<NodeNetwork> {
        let mut merged: Option<NodeNetwork> = None;
        let mut rtt_weighted = 0.0;
        let mut rtt_weight = 0u64;
        let pages = self.gateways.values().flat_map(BTreeMap::values);
        for page in pages {
            let Some(link) = page.nodes.get(node_id) else {
                continue;
            };
            let network = merged.get_or_insert_with(NodeNetwork::default);
            network.connections = network.connections.saturating_add(link.connections);
            network.messages_in = network.messages_in.saturating_add(link.messages_in);
            network.messages_out = network.messages_out.saturating_add(link.messages_out);
            if let Some(rtt) = link.rtt_smoothed_ms.filter(|rtt| rtt.is_finite()) {
                let weight = link.connections.max(1);
                rtt_weighted += rtt * weight as f64;
                rtt_weight += weight;
            }
        }
        if let Some(network) = merged.as_mut()
            && rtt_weight > 0
        {
            network.rtt_ms = Some(rtt_weighted / rtt_weight as f64);
        }
        merged
    }

    /// Returns how many gateways have a live snapshot.
    #[cfg(test)]
    pub(crate) fn gateways(&self) -> usize {
        self.gateways.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(node_id: &str, connections: u64, rtt: Option<f64>, messages: (u64, u64)) -> NodeLink {
        NodeLink {
            node_id: node_id.into(),
            connections,
            rtt_last_ms: rtt,
            rtt_smoothed_ms: rtt,
            messages_in: messages.0,
            messages_out: messages.1,
        }
    }

    fn report(gateway_id: &str, nodes: Vec<NodeLink>) -> NodeLinksReport {
        NodeLinksReport {
            gateway_id: gateway_id.into(),
            interval_ms: 1_000,
            timestamp_ms: 0,
            page: 0,
            pages: 1,
            nodes,
        }
    }

    #[test]
    fn figures_are_merged_over_gateways_and_a_silent_gateway_drops_out() {
        let start = Instant::now();
        let mut links = Links::default();
        links.observe(
            report("gw-a", vec![link("n", 1, Some(2.0), (10, 20))]),
            start,
            100,
        );
        let later = start + Duration::from_secs(2);
        links.observe(
            report(
                "gw-b",
                vec![link("n", 3, Some(6.0), (1, 2)), link("m", 1, None, (0, 1))],
            ),
            later,
            100,
        );
        let merged = links.network_of("n").unwrap();
        assert_eq!(merged.connections, 4);
        assert_eq!((merged.messages_in, merged.messages_out), (11, 22));
        // (2 * 1 + 6 * 3) / 4
        assert_eq!(merged.rtt_ms, Some(5.0));
        assert_eq!(links.network_of("m").unwrap().rtt_ms, None);
        assert_eq!(links.network_of("unknown"), None);

        // gw-a reports every second and is stale after three seconds of silence.
        assert_eq!(links.sweep(start + Duration::from_secs(3)), 0);
        assert_eq!(links.sweep(start + Duration::from_millis(3_001)), 1);
        let merged = links.network_of("n").unwrap();
        assert_eq!((merged.connections, merged.rtt_ms), (3, Some(6.0)));

        // A gateway whose last node disconnected reports an empty snapshot.
        links.observe(report("gw-b", Vec::new()), later, 100);
        assert_eq!(links.network_of("n"), None);
        assert_eq!(links.gateways(), 1);
    }

    #[test]
    fn a_snapshot_in_pages_is_merged_and_a_shrinking_snapshot_drops_its_last_pages() {
        let now = Instant::now();
        let mut links = Links::default();
        let page = |index: u32, pages: u32, nodes: Vec<NodeLink>| NodeLinksReport {
            page: index,
            pages,
            ..report("gw", nodes)
        };
        links.observe(page(0, 2, vec![link("a", 1, Some(1.0), (1, 1))]), now, 100);
        links.observe(page(1, 2, vec![link("b", 1, Some(2.0), (1, 1))]), now, 100);
        assert!(links.network_of("a").is_some() && links.network_of("b").is_some());
        // One page now holds everything that is left: b's page 1 is gone.
        links.observe(page(0, 1, vec![link("a", 1, Some(1.0), (2, 2))]), now, 100);
        assert_eq!(links.network_of("b"), None);
        assert_eq!(links.network_of("a").unwrap().messages_in, 2);
        assert!(
            !links.observe(page(3, 2, Vec::new()), now, 100),
            "a page past the count"
        );
    }
}
