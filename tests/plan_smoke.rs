use cutover::engine::plan::{OpKind, compile};
use cutover::inventory::Inventory;
use cutover::runbook::Runbook;
use std::collections::BTreeMap;

#[test]
fn flagship_compiles_with_implicit_gates() {
    let rb = Runbook::load("runbooks/fernet-to-jws.yaml".as_ref())
        .unwrap()
        .runbook;
    let inv = Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
    let params = rb.resolve_params(&BTreeMap::new()).unwrap();
    let plan = compile(&rb, &inv, &params).unwrap();
    for op in &plan {
        let k = match &op.kind {
            OpKind::Act { action, specs } => format!("{action} x{}", specs.len()),
            OpKind::Gate { gate, implicit } => format!(
                "gate {}{}",
                gate.name(),
                if *implicit { " (implicit)" } else { "" }
            ),
            OpKind::Confirm { id, .. } => format!("confirm {id}"),
            OpKind::Note { .. } => "note".into(),
            OpKind::WaitUntil { .. } => "wait-until".into(),
        };
        println!(
            "{:3} {:12} {:5} {k}",
            op.index,
            op.step,
            op.node.clone().unwrap_or_default()
        );
    }
    assert!(plan.len() > 30);
}
