"""The report printed after training: accuracy on the held-out set, by kind, and a few misses."""


def print_report(results):
    """Accuracy by kind, then the two headline figures, then a few misses."""
    kinds = {}
    for kind, _, expected, got in results:
        kinds.setdefault(kind, []).append(got == expected)
    for kind, right in kinds.items():
        print(f"  {kind:28s} {_share(right)}")
    phrasings = [ok for k, oks in kinds.items() if not k.startswith(("corpus", "off-topic")) for ok in oks]
    off_topic = kinds["off-topic"]
    capitals = [ok for k, oks in kinds.items() if k.startswith(("capital", "follow-up")) for ok in oks]
    print(
        f"held-out phrasings answered correctly: {_share(phrasings)};"
        f" capitals and follow-ups: {_share(capitals)}"
    )
    print(f"held-out off-topic questions answered with the fallback: {_share(off_topic)}")
    misses = [r for r in results if r[2] != r[3]]
    for kind, question, expected, got in misses[:40]:
        print(f"  miss [{kind}] {question!r}: {got!r} (expected {expected!r})")


def _share(oks):
    """>>> _share([True, True, False])
    '2/3 (66.7%)'
    """
    return f"{sum(oks)}/{len(oks)} ({100 * sum(oks) / len(oks):.1f}%)"
