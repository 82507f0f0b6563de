#!/usr/bin/env python3
"""shapley_bound: how far any size-stratified Shapley sampler can get below exact enumeration
(docs/shapley-estimators.md, "Why not a fifth").

    python3 bench/shapley_bound.py TABLE [TARGET_RMSE]

TABLE is the exact table bench/shapley_study writes (int n, n_mu, n_seqs; then per value kind
2^n doubles D(S) and n doubles phi; the CE kind is used). With the true stratum variances
sigma^2(i, s) of the marginals D(S) - D(S + i) over |S| = s known in advance (an oracle no real
sampler has), it allocates draws greedily by Neyman allocation (largest fall of the mean
variance per new coalition, without replacement, finite population correction) until the mean
over units of Var(phi_i) is at most TARGET_RMSE^2 (default 0.01 nats), with sizes 0 and n-1 exact
and the designs of src/shapley.c (a base set S of size s plus S + i for 2s < n-1, else T of
size s+1 and T - i). Then it draws one such design and prices it as the evaluator does (one
batch sorted for prefix reuse: a base pass plus every kept sublayer from where a coalition
departs from the previous one, times the sequences).
"""
import math, random, struct, sys

def main():
    data = open(sys.argv[1], 'rb').read()
    target = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    n, n_mu, n_seqs = struct.unpack_from('iii', data, 0)
    D = struct.unpack_from('%dd' % (1 << n), data, 12)
    block = n_mu != n
    pc = lambda x: bin(x).count('1')

    def kept(c):
        return tuple((c >> (u // 2 if block else u)) & 1 for u in range(n_mu))

    def cost(cs):
        path, per = (1,) * n_mu, n_mu
        for k in sorted((kept(c) for c in set(cs)), reverse=True):
            f = 0
            while f < n_mu and k[f] == path[f]:
                f += 1
            if f < n_mu:
                per += sum(k[f:])
                path = k
        return per * n_seqs

    sig = {}
    for s in range(n):
        for i in range(n):
            ms = [D[S] - D[S | 1 << i] for S in range(1 << n) if not S >> i & 1 and pc(S) == s]
            m = sum(ms) / len(ms)
            sig[i, s] = sum((x - m) ** 2 for x in ms) / (len(ms) - 1) if len(ms) > 1 else 0.0
    pop = [math.comb(n - 1, s) for s in range(n)]
    up = [2 * s < n - 1 for s in range(n)]
    N = [math.comb(n, s if up[s] else s + 1) for s in range(n)]
    pi = [(n - s) / n if up[s] else (s + 1) / n for s in range(n)]
    kap = [(n - s + 1) if up[s] else (s + 2) for s in range(n)]
    sampled = range(1, n - 1)
    d = [0] * n
    for s in sampled:
        d[s] = 2

    def mean_var():
        v = 0.0
        for s in sampled:
            if d[s] >= N[s]:
                continue
            c = d[s] * pi[s]
            v += sum(sig[i, s] for i in range(n)) * (1 / c - 1 / pop[s])
        return v / n ** 3

    while mean_var() > target ** 2:
        best = None
        for s in sampled:
            if d[s] >= N[s]:
                continue
            tot = sum(sig[i, s] for i in range(n))
            c = d[s] * pi[s]
            after = 1 / pop[s] if d[s] + 1 >= N[s] else 1 / ((d[s] + 1) * pi[s])
            g = tot * (1 / c - after) / kap[s]
            if best is None or g > best[0]:
                best = (g, s)
        d[best[1]] += 1
    random.seed(1)
    cs = {0, (1 << n) - 1} | {1 << i for i in range(n)} | {((1 << n) - 1) ^ (1 << i) for i in range(n)}
    for s in sampled:
        k = s if up[s] else s + 1
        for S in random.sample([S for S in range(1 << n) if pc(S) == k], min(d[s], N[s])):
            cs.add(S)
            for i in range(n):
                if up[s] and not S >> i & 1:
                    cs.add(S | 1 << i)
                if not up[s] and S >> i & 1:
                    cs.add(S ^ 1 << i)
    print('target RMSE %g: draws per stratum %s of %s' % (target, d[1:n - 1], N[1:n - 1]))
    print('distinct coalitions %d of %d; unit evaluations %d (one batch); exact enumeration %d'
          % (len(cs), 1 << n, cost(cs), cost(range(1 << n))))

main()
