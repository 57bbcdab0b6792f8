"""Usage: python3 scripts/twin_overloads.py EVAL_OUT/effects.csv

Overloads among material effects (|true mean| > 1000) on p95 latency, p50 latency and
queue depth, from a `loopcast eval --twins` effects.csv: how many, ranked (AUC), share
among the 40 largest predictions, median prediction / truth, the 10 largest predictions."""
import csv, sys, statistics
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r['model'] == 'loopcast']
for channel in ['latency_p95_ms', 'latency_p50_ms', 'queue_depth']:
    rs = [r for r in rows if r['channel'] == channel]
    t = [abs(float(r['true_mean'])) for r in rs]
    p = [float(r['predicted_mean']) * (1 if float(r['true_mean']) >= 0 else -1) for r in rs]
    over = [ti > 1000 for ti in t]
    pos = [pi for pi, o in zip(p, over) if o]; neg = [pi for pi, o in zip(p, over) if not o]
    auc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / max(1, len(pos) * len(neg))
    order = sorted(range(len(rs)), key=lambda i: -p[i])
    top40 = order[:40]
    share = sum(over[i] for i in top40) / max(1, len(top40))
    med_pred = statistics.median(pos) if pos else float('nan')
    med_true = statistics.median([ti for ti, o in zip(t, over) if o]) if pos else float('nan')
    top10 = order[:10]
    print(f"{channel}: overloads {len(pos)} of {len(rs)}; AUC {auc:.3f}; among 40 largest {100*share:.0f} %; "
          f"median prediction / truth {med_pred:,.0f} / {med_true:,.0f}; "
          f"10 largest: {statistics.median([p[i] for i in top10]):,.0f} / {statistics.median([t[i] for i in top10]):,.0f}; "
          f"predicted >= 1000: {sum(1 for x in pos if x >= 1000)}")
