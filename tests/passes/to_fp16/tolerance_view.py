"""Judge a converted model against its FP32 original on several feeds, one verdict per feed (tests, bench)."""

from polygraphy_ext.passes.precision.tolerance import judge


def judge_outputs(reference_session, candidate_session, feeds_list, atol, rtol):
    names = [o.name for o in reference_session.get_outputs()]
    verdicts = []
    for feeds in feeds_list:
        reference = dict(zip(names, reference_session.run(names, feeds)))
        candidate = dict(zip(names, candidate_session.run(names, feeds)))
        verdict = judge([reference], [candidate], atol, rtol)
        verdicts.append(
            {
                "ok": verdict.ok,
                "max_abs_err": max(e.max_abs_err for e in verdict.errors),
                "nonfinite": sum(e.nonfinite for e in verdict.errors),
            }
        )
    return verdicts
