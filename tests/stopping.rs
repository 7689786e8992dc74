//! The stop semantics, each case written once and run on both backends.

mod common;

use common::*;
use wgtrain::data::Demo;
use wgtrain::metrics::Metric;
use wgtrain::model::Activation;
use wgtrain::stop::StopReason;

both_backends! {
    // Zero-initialised logistic regression gives z = 0 everywhere: every row is predicted
    // positive, so accuracy is exactly the positive fraction (0.5 on blobs). A threshold equal
    // to it must stop at t = 0 (>=, not >).
    fn stops_at_zero_on_a_tie(kind) {
        let d = demo(Demo::Blobs, 100, None, 0.0, 1);
        let sp = spec(&d, &[], Activation::Relu);
        let cfg = config(&sp, 0.1, 0);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, seen) = train_all(s.as_mut(), &rule(Metric::Accuracy, Some(0.5), 100));
        assert_eq!(seen.len(), 1);
        assert_eq!(out.stop.reason, StopReason::Threshold);
        assert_eq!(out.stop.iteration, 0);
        assert_eq!(out.metrics.accuracy, 0.5);
        assert_eq!((out.metrics.tp, out.metrics.fp, out.metrics.fn_, out.metrics.tn), (50, 50, 0, 0));
        assert_eq!(out.params, cfg.params);
    }

    // The run stops at the first iteration whose metric reaches the threshold, and returns
    // exactly the weights after that many updates.
    fn stops_at_the_exact_first_iteration(kind) {
        let d = demo(Demo::Hyperplane, 300, Some(5), 0.1, 3);
        let sp = spec(&d, &[6], Activation::Tanh);
        let cfg = config(&sp, 0.5, 3);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (_, seen) = train_all(s.as_mut(), &rule(Metric::F1, None, 40));
        // The target is a value the run really reaches (a tie), first reached at `first`.
        let target = seen.iter().map(|m| m.f1).fold(f64::MIN, f64::max);
        let first = seen.iter().position(|m| m.f1 >= target).unwrap() as u64;
        assert!(first > 0, "the target must need training");

        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, again) = train_all(s.as_mut(), &rule(Metric::F1, Some(target), 40));
        assert_eq!(out.stop.reason, StopReason::Threshold);
        assert_eq!(out.stop.iteration, first);
        assert_eq!(out.stop.value, target);
        assert_eq!(again.len() as u64, first + 1);
        assert_eq!(again[..], seen[..=first as usize], "same run, bit for bit");
        let Some(fresh) = session(kind, &d, &sp, &cfg) else { return };
        assert_eq!(bits(&out.params), bits(&params_after(fresh, first)));
    }

    fn loss_threshold_is_at_most(kind) {
        let d = demo(Demo::Blobs, 64, None, 0.0, 2);
        let sp = spec(&d, &[], Activation::Relu);
        let cfg = config(&sp, 0.3, 0);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, seen) = train_all(s.as_mut(), &rule(Metric::Loss, Some(0.2), 500));
        assert_eq!(out.stop.reason, StopReason::Threshold);
        assert!(out.metrics.loss <= 0.2);
        assert!(seen[..seen.len() - 1].iter().all(|m| m.loss > 0.2));
    }

    fn max_iter_returns_the_last_weights(kind) {
        let d = demo(Demo::Moons, 50, None, 0.0, 4);
        let sp = spec(&d, &[3], Activation::Sigmoid);
        let cfg = config(&sp, 0.2, 4);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, seen) = train_all(s.as_mut(), &rule(Metric::Accuracy, Some(1.0), 7));
        assert_eq!(out.stop.reason, StopReason::MaxIter);
        assert_eq!(out.stop.iteration, 7);
        assert_eq!(seen.len(), 8);
        assert_eq!(out.metrics, seen[7]);
        let Some(fresh) = session(kind, &d, &sp, &cfg) else { return };
        assert_eq!(bits(&out.params), bits(&params_after(fresh, 7)));
    }

    fn max_iter_zero_checks_only_the_initial_weights(kind) {
        let d = demo(Demo::Blobs, 10, None, 0.0, 0);
        let sp = spec(&d, &[2], Activation::Relu);
        let cfg = config(&sp, 0.1, 0);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, seen) = train_all(s.as_mut(), &rule(Metric::Accuracy, None, 0));
        assert_eq!((out.stop.reason, out.stop.iteration, seen.len()), (StopReason::MaxIter, 0, 1));
        assert_eq!(out.params, cfg.params);
    }

    // A huge learning rate blows the weights up; the run stops on the first non-finite loss
    // and returns the last finite weights, those of the iteration before.
    fn non_finite_returns_the_last_finite_weights(kind) {
        let d = demo(Demo::Hyperplane, 40, Some(4), 0.2, 5);
        let sp = spec(&d, &[8], Activation::Relu);
        let cfg = config(&sp, 1e30, 5);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, seen) = train_all(s.as_mut(), &rule(Metric::Accuracy, Some(1.0), 100));
        assert_eq!(out.stop.reason, StopReason::NonFinite);
        let at = out.stop.non_finite_at.expect("non_finite_at");
        assert_eq!(at, out.stop.iteration + 1);
        assert_eq!(seen.len() as u64, at + 1);
        assert!(!seen[at as usize].loss.is_finite());
        assert!(out.metrics.loss.is_finite());
        assert_eq!(out.metrics, seen[out.stop.iteration as usize]);
        let Some(fresh) = session(kind, &d, &sp, &cfg) else { return };
        assert_eq!(bits(&out.params), bits(&params_after(fresh, out.stop.iteration)));
    }

    // XNOR is not linearly separable: zero-initialised logistic regression has a zero gradient
    // by symmetry and never gets past accuracy 0.5.
    fn xnor_logistic_regression_hits_max_iter(kind) {
        let d = demo(Demo::Xnor, 4, None, 0.0, 0);
        let sp = spec(&d, &[], Activation::Relu);
        let cfg = config(&sp, 0.1, 0);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, _) = train_all(s.as_mut(), &rule(Metric::Accuracy, Some(0.99), 200));
        assert_eq!(out.stop.reason, StopReason::MaxIter);
        assert_eq!(out.metrics.accuracy, 0.5);
    }

    // One hidden layer of 8 tanh units solves it.
    fn xnor_tanh_mlp_reaches_accuracy_one(kind) {
        let d = demo(Demo::Xnor, 4, None, 0.0, 0);
        let sp = spec(&d, &[8], Activation::Tanh);
        let cfg = config(&sp, 0.5, 0);
        let Some(mut s) = session(kind, &d, &sp, &cfg) else { return };
        let (out, _) = train_all(s.as_mut(), &rule(Metric::Accuracy, Some(1.0), 1000));
        assert_eq!(out.stop.reason, StopReason::Threshold);
        assert_eq!(out.metrics.accuracy, 1.0);
    }

    // Same seed and input, same bits.
    fn runs_are_bit_identical(kind) {
        let d = demo(Demo::Moons, 130, None, 0.1, 9);
        let sp = spec(&d, &[5, 3], Activation::Relu);
        let cfg = config(&sp, 0.3, 9);
        let run = || {
            let mut s = session(kind, &d, &sp, &cfg)?;
            Some(train_all(s.as_mut(), &rule(Metric::Accuracy, None, 25)))
        };
        let (Some((a, sa)), Some((b, sb))) = (run(), run()) else { return };
        assert_eq!(bits(&a.params), bits(&b.params));
        assert_eq!(sa, sb);
    }
}
