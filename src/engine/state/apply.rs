//! The fold: `State::apply` records one event.

use super::*;
use crate::engine::action::PoolMove;
use crate::engine::events::Event;
use crate::engine::narrate;

impl State {
    fn push_log(&mut self, time: DateTime<Utc>, line: narrate::LogEntry) {
        self.log.push(LogLine {
            time,
            node: line.node,
            action: line.action,
            text: line.text,
            level: line.level,
            duration_ms: line.duration_ms,
        });
    }

    /// The UI log's lines for `event` ([`narrate::log`]), with what they need from the state
    /// before it: step titles, the intent an outcome or in-doubt choice answers, and the node
    /// of the hard stop being answered.
    fn narrate(&self, event: &Event) -> Vec<narrate::LogEntry> {
        let title = |step: &str| {
            self.steps
                .iter()
                .find(|s| s.id == step)
                .map(|s| s.title.clone())
        };
        let intent = match event {
            Event::Outcome(o) => self.in_flight.get(&o.id),
            Event::InDoubtResolved { id, .. } => self.in_flight.get(id),
            _ => None,
        };
        let cx = narrate::Context {
            step_title: Some(&title),
            intent: intent.map(|f| &f.intent),
            stop_node: self.hard_stop.as_ref().and_then(|h| h.node.clone()),
            ..narrate::Context::default()
        };
        narrate::log(event, &cx)
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeView {
        self.nodes
            .entry(name.to_string())
            .or_insert_with(|| NodeView {
                name: name.to_string(),
                ..Default::default()
            })
    }

    fn merge(&mut self, obs: &Observation, time: DateTime<Utc>) {
        for (name, f) in &obs.nodes {
            if f.error.is_none() {
                self.expiration = f.expiration;
                self.allow_expired_window = f.allow_expired_window;
            }
            let n = self.node_mut(name);
            let mut f = f.clone();
            // A read that did not reach keystone.conf (an unreachable node, a lean read) keeps
            // what the last one read of the token cache's settings.
            if f.cache.is_none() {
                f.cache = n.facts.as_ref().and_then(|p| p.cache.clone());
            }
            n.facts = Some(std::sync::Arc::new(f));
            n.facts_at = Some(time);
        }
        if let Some(servers) = &obs.lb {
            let at = obs.lb_read_at.unwrap_or(time);
            for s in servers {
                let n = self.node_mut(&s.node);
                n.lb.insert(s.lb.clone(), s.clone());
                n.lb_at = Some(at);
            }
            self.lb_errors = obs.lb_errors.clone();
        }
        for (lb, f) in &obs.lb_reload {
            self.lb_reload.insert(lb.clone(), f.clone());
        }
        for (name, t) in &obs.tokens {
            let n = self.node_mut(name);
            // A token only issued (the provider a node serves, for mixed-pool) that says what
            // the last validated one said leaves that one shown: it validated, and this one
            // was not asked to.
            // A kept token (the node's proof, not asked again) that agrees with the one shown
            // leaves it too.
            let agrees = (t.issued_only() || t.kept_since.is_some())
                && n.last_token
                    .as_ref()
                    .is_some_and(|l| l.validated() && l.format == t.format);
            if !agrees {
                n.last_token = Some(t.clone());
                n.token_at = Some(t.kept_since.unwrap_or(time));
            }
        }
        if let Some(m) = &obs.matrix {
            self.matrix = Some(m.clone());
        }
        if let Some(t) = &obs.trusts {
            self.trusts = Some(t.clone());
        }
        for (name, provider) in &obs.flipped {
            let n = self.node_mut(name);
            if let Some(f) = n.facts.as_mut() {
                std::sync::Arc::make_mut(f).provider = Some(provider.clone());
            }
            n.flipped_at = Some(time);
            self.last_flip_at = Some(time);
        }
    }

    /// The phase the action (its spec, when the intent is known) left its node in.
    fn set_phase_after(&mut self, spec: Option<&ActionSpec>, node: &str, ok: bool) {
        let n = self.node_mut(node);
        if !ok {
            n.phase = NodePhase::Failed;
            return;
        }
        if let Some(p) = spec.and_then(ActionSpec::phase_after) {
            n.phase = p.into();
        }
    }

    /// An act (or wait) op is done when every effect it needs came back well.
    fn maybe_finish_op(&mut self) {
        let Some(op) = self.plan.get(self.cursor) else {
            return;
        };
        let needed = match &op.kind {
            OpKind::Act { specs, .. } => specs.len(),
            OpKind::WaitUntil { .. } => 1,
            _ => return,
        };
        let index = op.index;
        if self.op_failed.is_empty()
            && self.op_done.len() >= needed
            && self.in_flight.values().all(|f| f.intent.op != index)
        {
            self.advance_cursor();
        }
    }

    /// Gates passed before an interruption were checked on probes that are stale now: step back
    /// over the gates right before the cursor (same step) so they are evaluated again right
    /// before the action they guard.
    fn rewind_gates(&mut self) {
        let step = self.plan.get(self.cursor).map(|o| o.step.clone());
        while self.cursor > 0
            && self.plan.get(self.cursor - 1).is_some_and(|o| {
                matches!(o.kind, OpKind::Gate { .. }) && Some(&o.step) == step.as_ref()
            })
        {
            self.cursor -= 1;
            self.gates_passed.remove(&self.cursor);
        }
    }

    /// A pause request ends with the pause, halt or completion it came before.
    fn clear_pause_request(&mut self) {
        self.pause_requested = false;
        self.pause_cause = PauseCause::Operator;
    }

    fn advance_cursor(&mut self) {
        self.cursor += 1;
        self.op_done.clear();
        self.op_failed.clear();
        self.raised_at_cursor = false;
    }

    /// Record one event. `time` is the journal's timestamp for it.
    pub fn apply(&mut self, event: &Event, time: DateTime<Utc>) {
        self.events += 1;
        self.last_event_at = Some(time);
        // The log's lines, in the narrator's words, about the state before this event.
        let said = self.narrate(event);
        match event {
            Event::RunStarted(rs) => {
                // The plan as the run recorded it: the fold never compiles (see `recorded`).
                let rb = Runbook::parse(&rs.runbook_source, &rs.runbook_origin).ok();
                let plan = rs.plan.clone();
                self.steps = rb
                    .as_ref()
                    .map(|rb| {
                        rb.steps
                            .iter()
                            .filter(|s| rb.included(s, &rs.params))
                            .map(|s| {
                                let first = plan
                                    .iter()
                                    .position(|o| o.step == s.id)
                                    .unwrap_or(plan.len());
                                let last = plan
                                    .iter()
                                    .rposition(|o| o.step == s.id)
                                    .map(|i| i + 1)
                                    .unwrap_or(first);
                                StepView {
                                    id: s.id.clone(),
                                    title: crate::runbook::template::render(
                                        &s.title,
                                        &rs.runbook_name,
                                        &rb.target_provider,
                                        &rs.params,
                                        None,
                                    )
                                    .unwrap_or_else(|_| s.title.clone()),
                                    description: s.description.clone(),
                                    scope: s.scope,
                                    status: StepStatus::Pending,
                                    ops: first..last,
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.target_provider = rb.as_ref().and_then(|r| r.target_provider.parse().ok());
                self.runbook = rb.map(std::sync::Arc::new);
                self.plan = std::sync::Arc::new(plan);
                self.node_order = rs.inventory.node_names();
                self.lb_names = rs
                    .inventory
                    .load_balancers
                    .iter()
                    .map(|l| l.name.clone())
                    .collect();
                for n in rs.inventory.node_names() {
                    self.node_mut(&n);
                }
                self.expiration = 3600;
                self.allow_expired_window = 172800;
                self.run = Some(std::sync::Arc::new(rs.clone()));
                self.status = RunStatus::Running;
                self.started_at = Some(time);
            }
            Event::StepStarted { step } => {
                if let Some(s) = self.steps.iter_mut().find(|s| &s.id == step) {
                    s.status = StepStatus::Active;
                }
            }
            Event::StepCompleted { step } => {
                if let Some(s) = self.steps.iter_mut().find(|s| &s.id == step) {
                    s.status = StepStatus::Done;
                }
            }
            Event::Intent(i) => {
                self.next_id = self.next_id.max(i.id + 1);
                self.last_gate_read = None;
                if let Some(node) = &i.node {
                    let n = self.node_mut(node);
                    n.activity = Some(i.action.clone());
                    if let Some(p) = i.spec.phase_on_start() {
                        n.phase = p.into();
                    }
                    if i.spec.pool_move() == Some(PoolMove::PutsBack) {
                        // A deliberate re-add: the guard lets go of the node from here on.
                        self.guarded.remove(node);
                    }
                }
                // A swap puts half A back: the guard lets go of A from its intent on.
                for (n, m, _) in i.spec.pool_moves() {
                    if m == PoolMove::PutsBack && i.node.is_none() {
                        self.guarded.remove(&n);
                    }
                }
                self.in_flight.insert(
                    i.id,
                    InFlight {
                        intent: i.clone(),
                        started: time,
                    },
                );
            }
            Event::Outcome(o) => {
                let intent = self.in_flight.remove(&o.id).map(|f| f.intent);
                self.in_doubt.remove(&o.id);
                self.merge(&o.observed, time);
                let action = intent
                    .as_ref()
                    .map(|i| i.action.clone())
                    .unwrap_or_default();
                // A gate's probe is about the gate's node even when the probe is fleet-wide.
                let node = o
                    .node
                    .clone()
                    .or_else(|| intent.as_ref().and_then(|i| i.node.clone()));
                if o.ok
                    && intent
                        .as_ref()
                        .is_some_and(|i| i.spec.pool_move() == Some(PoolMove::TakesOut))
                    && let Some(node) = &node
                {
                    self.guarded.insert(node.clone());
                }
                // A swap took half B out (the guard holds it from here on) and put A back.
                if o.ok
                    && node.is_none()
                    && let Some(i) = &intent
                {
                    for (n, m, phase) in i.spec.pool_moves() {
                        if m == PoolMove::TakesOut {
                            self.guarded.insert(n.clone());
                        }
                        if let Some(p) = phase {
                            self.node_mut(&n).phase = p.into();
                        }
                    }
                }
                if let Some(node) = &node {
                    let n = self.node_mut(node);
                    n.activity = None;
                    n.last_error = if o.ok { None } else { Some(o.summary.clone()) };
                    n.last_failed_action = (!o.ok).then(|| action.clone());
                    self.set_phase_after(intent.as_ref().map(|i| &i.spec), node, o.ok);
                }
                let at_cursor = intent.as_ref().is_some_and(|i| i.op == self.cursor);
                if at_cursor
                    && o.ok
                    && let Some(i) = &intent
                    && matches!(
                        self.plan.get(self.cursor).map(|op| &op.kind),
                        Some(OpKind::Gate { .. })
                    )
                {
                    self.last_gate_read = Some(GateRead {
                        op: self.cursor,
                        spec: i.spec.clone(),
                        observed: o.observed.clone(),
                    });
                }
                // A token issued and validated directly at a node by an op of its own is a read
                // too: the gates right after it that ask no more (validated-before-readd) are
                // judged on it instead of issuing another.
                if at_cursor
                    && o.ok
                    && let Some(i) = &intent
                    && let Some(spec) = i.spec.token_read()
                    && matches!(
                        self.plan.get(self.cursor).map(|op| &op.kind),
                        Some(OpKind::Act { specs, .. }) if specs.len() == 1
                    )
                {
                    self.last_gate_read = Some(GateRead {
                        op: self.cursor,
                        spec,
                        observed: o.observed.clone(),
                    });
                }
                if at_cursor {
                    if o.ok {
                        if let Some(i) = &intent {
                            self.op_done.insert(o.id, i.spec.clone());
                        }
                    } else {
                        self.op_failed.insert(o.id);
                    }
                }
                if at_cursor {
                    self.maybe_finish_op();
                }
            }
            Event::GatePassed { op, gate, node, .. } => {
                self.gates_passed.insert(*op);
                if gate == "validated-before-readd"
                    && let Some(n) = node
                {
                    self.node_mut(n).phase = NodePhase::Validated;
                }
                self.advance_cursor();
            }
            // Only said in the log: the decision it leads to is an event of its own.
            Event::GateFailed { .. } => {}
            Event::HardStopRaised(h) => {
                self.last_gate_read = None;
                self.hard_stop = Some(h.clone());
                self.status = RunStatus::AwaitingConfirm;
                self.raised_at_cursor = true;
            }
            Event::HardStopConfirmed { id, who, .. } => {
                let hs = self.hard_stop.take();
                self.status = RunStatus::Running;
                self.confirmations.push((id.clone(), who_label(who)));
                // A confirm op, or a gate that asked, is passed; an in-doubt or host-key stop is
                // followed by its redo (the op stays at the cursor).
                self.resumed = None;
                let stays = hs.as_ref().is_some_and(|h| {
                    h.in_doubt.is_some()
                        || h.host_key.is_some()
                        || !h.drift.is_empty()
                        || !h.breach.is_empty()
                });
                if hs.as_ref().is_some_and(|h| !h.drift.is_empty()) {
                    self.pending_drift.clear();
                }
                if let Some(h) = &hs
                    && !h.breach.is_empty()
                {
                    // The gates before the action at the cursor read a pool that changed
                    // since: they are read again (unless that action already started).
                    self.open_breaches.clear();
                    let cursor = self.cursor;
                    let at_gate = matches!(
                        self.plan.get(cursor).map(|o| &o.kind),
                        Some(OpKind::Gate { .. })
                    );
                    if at_gate
                        || (self.op_done.is_empty()
                            && self.in_flight.values().all(|f| f.intent.op != cursor))
                    {
                        // (a gate's own probe result is stale too; a probe still in flight
                        // for it comes back late and is only recorded)
                        self.op_done.clear();
                        self.rewind_gates();
                    }
                }
                if let Some(h) = &hs
                    && let Some(id) = h.in_doubt
                {
                    self.in_doubt.remove(&id);
                    self.in_flight.remove(&id);
                }
                if stays {
                    self.raised_at_cursor = false;
                    self.op_failed.clear();
                } else {
                    if let Some(h) = &hs
                        && matches!(
                            self.plan.get(h.op).map(|o| &o.kind),
                            Some(OpKind::Gate { .. })
                        )
                    {
                        self.gates_passed.insert(h.op);
                    }
                    self.advance_cursor();
                }
            }
            Event::HardStopDeclined { id, who, .. } => {
                self.resumed = None;
                // Declining pauses the run: a pause asked for before ends with it.
                self.clear_pause_request();
                self.status = RunStatus::Paused {
                    reason: narrate::declined(id, who),
                };
                self.raised_at_cursor = false;
                self.hard_stop = None;
            }
            Event::PauseRequested { cause, .. } => {
                self.resumed = None;
                self.pause_requested = true;
                self.pause_cause = *cause;
            }
            Event::RunPaused { reason } => {
                self.last_gate_read = None;
                self.clear_pause_request();
                self.status = RunStatus::Paused {
                    reason: reason.clone(),
                };
                // A hard stop left waiting (the terminal hung up there) is raised again by
                // the resume; a paused run answers none.
                self.hard_stop = None;
                self.raised_at_cursor = false;
            }
            Event::RunResumed {
                who,
                drift,
                in_doubt,
                observed,
            } => {
                self.last_gate_read = None;
                self.merge(observed, time);
                self.resumed = Some(ResumeNote {
                    at: time,
                    who: who_label(who),
                    drift: drift.clone(),
                });
                // Gates passed before the interruption were checked on probes that are stale
                // now: step back over them so they are evaluated again right before the action
                // they guard (only when nothing of the op at the cursor has happened yet).
                // With an action in doubt, the person decides first; redoing it re-checks
                // its gates then (see InDoubtResolved).
                // A gate's own read (its probe, done) counts as nothing of it having happened:
                // that read is stale too.
                let at_gate = matches!(
                    self.plan.get(self.cursor).map(|o| &o.kind),
                    Some(OpKind::Gate { .. })
                );
                if in_doubt.is_empty() && (self.op_done.is_empty() || at_gate) {
                    self.op_done.clear();
                    self.rewind_gates();
                }
                self.status = RunStatus::Running;
                self.hard_stop = None;
                self.raised_at_cursor = false;
                // A pause asked for in an earlier session (which then crashed, quit or lost
                // its terminal) is not this session's: it must not pause the resumed run.
                self.clear_pause_request();
                self.op_failed.clear();
                self.drift = drift.clone();
                for d in drift {
                    if !self.pending_drift.contains(d) {
                        self.pending_drift.push(d.clone());
                    }
                }
                // Whatever was in flight when the run stopped is in doubt now.
                for id in in_doubt {
                    self.in_doubt.insert(*id);
                }
                let stale: Vec<u64> = self.in_flight.keys().copied().collect();
                for id in stale {
                    if !self.in_doubt.contains(&id) {
                        self.in_flight.remove(&id);
                    }
                }
                for n in self.nodes.values_mut() {
                    n.activity = None;
                }
            }
            Event::InDoubtResolved { id, choice, .. } => {
                self.in_doubt.remove(id);
                let intent = self.in_flight.remove(id).map(|f| f.intent);
                if choice == "redo"
                    && self.op_done.is_empty()
                    && intent.as_ref().is_some_and(|i| i.op == self.cursor)
                {
                    self.rewind_gates();
                }
                if choice == "mark-done"
                    && let Some(i) = &intent
                {
                    self.op_done.insert(*id, i.spec.clone());
                    if let Some(node) = &i.node {
                        self.set_phase_after(Some(&i.spec), node, true);
                    }
                }
                self.hard_stop = None;
                self.status = RunStatus::Running;
                self.raised_at_cursor = false;
                self.maybe_finish_op();
            }
            Event::RunHalted { reason, next, .. } => {
                self.last_gate_read = None;
                // A halt supersedes a hard stop that was waiting: confirming it must not un-halt.
                self.hard_stop = None;
                // ... and a pause asked for before: it must not pause the next resume.
                self.clear_pause_request();
                self.raised_at_cursor = false;
                self.status = RunStatus::Halted {
                    reason: reason.clone(),
                    next: next.clone(),
                };
                if let Some(s) = self
                    .steps
                    .iter_mut()
                    .find(|s| s.status == StepStatus::Active)
                {
                    s.status = StepStatus::Failed;
                }
            }
            Event::RunCompleted { .. } => {
                self.clear_pause_request();
                self.status = RunStatus::Completed;
                self.finished_at = Some(time);
            }
            Event::Note { .. } => {
                self.advance_cursor();
            }
            Event::PoolBreach(b) => {
                if self.guarded.contains(&b.node) {
                    self.open_breaches.push(b.clone());
                }
                let n = self.node_mut(&b.node);
                n.breaches += 1;
                n.last_breach = Some(b.clone());
            }
            Event::ClientImpact(c) => self.impact.apply(c, time),
        }
        // The mixed windows, as clients meet the pool (for client impact).
        let mixed = self.clients_meet_mixed_pool();
        self.impact.track_mixed(mixed, time);
        for line in said {
            self.push_log(time, line);
        }
        // A step that failed becomes active again once the run is running (after a resume).
        if self.status == RunStatus::Running
            && let Some(s) = self
                .steps
                .iter_mut()
                .find(|s| s.status == StepStatus::Failed)
        {
            s.status = StepStatus::Active;
        }
    }
}
