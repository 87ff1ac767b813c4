//! Brute-force reference models: the full history of grants and the definitions, nothing clever.

/// One grant as the model sees it: the instant and the units it currently holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    pub(crate) t: u64,
    pub(crate) n: u64,
}

/// The bucket constraint that GCRA promises (and is exactly equivalent to): for every earlier grant
/// `i`, the units granted from `i` on, plus `n`, fit in `burst + (t - t_i) * amount / window`.
/// Returns the earliest instant `>= from` at which `n` more units conform.
pub(crate) fn bucket_earliest(
    hist: &[Grant],
    n: u64,
    from: u64,
    amount: u64,
    window: u64,
    burst: u64,
) -> u64 {
    let (l, p, b) = (u128::from(amount), u128::from(window), u128::from(burst));
    let mut earliest = from;
    let mut suffix = u128::from(n);
    for g in hist.iter().rev() {
        suffix += u128::from(g.n);
        // (suffix) * p <= b * p + (t - t_i) * l   <=>   t >= t_i + ceil((suffix - b) * p / l)
        if suffix > b {
            let need = ((suffix - b) * p).div_ceil(l);
            let t = u128::from(g.t) + need;
            earliest = earliest.max(u64::try_from(t).unwrap_or(u64::MAX));
        }
    }
    earliest
}

/// Whether the latest grant conformed to the bucket constraint against the grants before it (with
/// the amounts they hold now: refunds and charges included).
pub(crate) fn bucket_history_conforms(
    hist: &[Grant],
    amount: u64,
    window: u64,
    burst: u64,
) -> Result<(), String> {
    if let Some(k) = hist.len().checked_sub(1) {
        let e = bucket_earliest(&hist[..k], hist[k].n, hist[k].t, amount, window, burst);
        if e > hist[k].t || hist[k].n > burst {
            return Err(format!(
                "grant {k} ({:?}) broke the bucket bound: it conforms only at {e}",
                hist[k]
            ));
        }
    }
    Ok(())
}

/// Leaky bucket (spacing): a grant may start once all earlier work has drained:
/// `t * amount >= t_i * amount + (units from i on) * window` for every earlier `i`.
pub(crate) fn spacing_earliest(hist: &[Grant], from: u64, amount: u64, window: u64) -> u64 {
    let (l, p) = (u128::from(amount), u128::from(window));
    let mut earliest = from;
    let mut suffix = 0u128;
    for g in hist.iter().rev() {
        suffix += u128::from(g.n);
        let t = (u128::from(g.t) * l + suffix * p).div_ceil(l);
        earliest = earliest.max(u64::try_from(t).unwrap_or(u64::MAX));
    }
    earliest
}

/// Units granted in the window `(t - window, t]`.
pub(crate) fn used_in_window(hist: &[Grant], t: u64, window: u64) -> u64 {
    hist.iter()
        .filter(|g| g.t <= t && g.t.saturating_add(window) > t)
        .map(|g| g.n)
        .sum()
}

/// Earliest instant `>= from` at which the sliding log admits `n`: the window sum only falls as
/// time passes, and only when a grant leaves, so try `from` and every instant a grant leaves.
pub(crate) fn log_earliest(hist: &[Grant], n: u64, from: u64, limit: u64, window: u64) -> u64 {
    let mut candidates: Vec<u64> = hist
        .iter()
        .map(|g| g.t.saturating_add(window))
        .filter(|&t| t > from)
        .collect();
    candidates.push(from);
    candidates.sort_unstable();
    candidates
        .into_iter()
        .find(|&t| used_in_window(hist, t, window) + n <= limit)
        .expect("an empty window admits any n <= limit")
}

/// Units granted in the aligned window with index `k`.
pub(crate) fn used_in_aligned(hist: &[Grant], k: u64, window: u64) -> u64 {
    hist.iter().filter(|g| g.t / window == k).map(|g| g.n).sum()
}

/// The sliding window counter's estimate at `t`, computed from the history.
pub(crate) fn counter_estimate(hist: &[Grant], t: u64, window: u64) -> u64 {
    let k = t / window;
    let current = used_in_aligned(hist, k, window);
    let previous = if k == 0 {
        0
    } else {
        used_in_aligned(hist, k - 1, window)
    };
    let elapsed = t - k * window;
    let weighted =
        (u128::from(previous) * u128::from(window - elapsed)).div_ceil(u128::from(window));
    u64::try_from(weighted).unwrap() + current
}

/// Earliest instant `>= from` at which the counter admits `n`, by binary search over the estimate
/// (which never rises as time passes without grants).
pub(crate) fn counter_earliest(hist: &[Grant], n: u64, from: u64, limit: u64, window: u64) -> u64 {
    let fits = |t: u64| counter_estimate(hist, t, window) + n <= limit;
    if fits(from) {
        return from;
    }
    let (mut lo, mut hi) = (from, (from / window + 2) * window);
    assert!(fits(hi), "two windows on, everything fits");
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { hi = mid } else { lo = mid }
    }
    hi
}
