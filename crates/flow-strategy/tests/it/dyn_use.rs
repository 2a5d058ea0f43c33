use std::sync::Arc;

use flow_strategy::{AllSettled, Outcome, Parallel, Sequential, Strategy, StrategyExt, run};

#[tokio::test]
async fn trait_objects_are_strategies() {
    let strategies: Vec<Arc<dyn Strategy>> = vec![
        Arc::new(Sequential),
        Arc::new(Parallel::new()),
        Arc::new(AllSettled::new()),
    ];
    for strategy in &strategies {
        let outcomes = run(strategy, (0..3).map(|i| async move { Ok::<_, ()>(i) })).await;
        assert_eq!(
            outcomes,
            [Outcome::Ok(0), Outcome::Ok(1), Outcome::Ok(2)],
            "{strategy:?}"
        );
        let outcomes = strategy.run((0..2).map(|i| async move { Err::<(), _>(i) })).await;
        assert_eq!(
            outcomes.iter().filter(|o| o.is_err()).count(),
            if strategy.fail_fast() { 1 } else { 2 }
        );
        // And the unsized target itself.
        let outcomes = run(&**strategy, [async { Ok::<_, ()>(()) }]).await;
        assert_eq!(outcomes, [Outcome::Ok(())]);
    }

    let boxed: Box<dyn Strategy> = Box::new(Parallel::new());
    assert_eq!(boxed.name(), "parallel");
    assert_eq!(run(&boxed, [async { Ok::<_, ()>(1) }]).await, [Outcome::Ok(1)]);
}

#[tokio::test]
async fn runs_can_be_spawned() {
    let strategy: Arc<dyn Strategy> = Arc::new(Parallel::new());
    let handle = tokio::spawn(async move { strategy.run((0..3).map(|i| async move { Ok::<_, ()>(i) })).await });
    let outcomes = handle.await.expect("task ran");
    assert_eq!(outcomes.len(), 3);

    let handle = tokio::spawn(async move { run(&AllSettled::new(), [async { Err::<(), _>("x") }]).await });
    assert_eq!(handle.await.expect("task ran"), [Outcome::Err("x")]);
}

#[test]
fn outcome_helpers() {
    let ok: Outcome<i32, &str> = Outcome::Ok(1);
    let err: Outcome<i32, &str> = Outcome::Err("e");
    let cancelled: Outcome<i32, &str> = Outcome::Cancelled;
    assert!(ok.is_ok() && !ok.is_err() && !ok.is_cancelled());
    assert!(err.is_err() && cancelled.is_cancelled());
    assert_eq!((ok.ok(), err.ok(), cancelled.ok()), (Some(1), None, None));
    assert_eq!((ok.err(), err.err(), cancelled.err()), (None, Some("e"), None));
    assert_eq!(ok.into_result(), Some(Ok(1)));
    assert_eq!(err.into_result(), Some(Err("e")));
    assert_eq!(cancelled.into_result(), None);
    assert_eq!(ok.as_ref(), Outcome::Ok(&1));
    assert_eq!(Outcome::from(Err::<i32, _>("e")), err);
}
