/* Lane forms of the scale searches of scalar_search.c (8 groups at once, one per lane).
 *
 * Included by avx2.c and neon.c after they define the 8-lane vector API (vf/vi/vm and the
 * vf_* / vi_* / vm_* helpers); see kq_lanes_common.h for how the lanes stay byte-identical.
 */
#ifndef KQ_LANES_SEARCH_H
#define KQ_LANES_SEARCH_H

#include "kq_lanes_common.h"

/* ---------------------------------------------------------------------------------------
 * Lane forms of the searches in scalar_search.c (see there for what they compute).
 * ------------------------------------------------------------------------------------- */

/* clamp(round-half-even(v), lo, hi) as a float: kq_nearest_int + clamp where |v| <= 2^22. */
static inline vf kl_level_f(vf v, vf lo, vf hi) { return vf_min(vf_max(vf_round_even(v), lo), hi); }

/* kq_make_qx_quants(n, nmax, x, L, rmse_type = 1, qw): qw NULL means weights x*x.
 * L[i] gets the stored level (l + nmax). n <= 32. */
static vf kl_make_qx(int n, int nmax, const vf *x, const vf *qw, vi *L) {
    vf w[32];
    vf amax = vf_zero(), max = vf_zero();
    for (int i = 0; i < n; i++) {
        const vf ax = vf_abs(x[i]);
        const vm m = vf_gt(ax, amax);
        amax = vf_sel(m, ax, amax);
        max = vf_sel(m, x[i], max);
        w[i] = qw ? qw[i] : vf_mul(x[i], x[i]);
    }
    const vm zero = vf_lt(amax, vf_set1(KQ_GROUP_MAX_EPS));
    const vf iscale0 = vf_div(vf_set1((float)-nmax), max);
    vf sumlx = vf_zero(), suml2 = vf_zero();
    for (int i = 0; i < n; i++) {
        const vf l = vi_to_f(kl_clamp(kl_nearest(vf_mul(iscale0, x[i])), -nmax, nmax - 1));
        sumlx = vf_add(sumlx, vf_mul(vf_mul(w[i], x[i]), l));
        suml2 = vf_add(suml2, vf_mul(vf_mul(w[i], l), l));
    }
    vf scale = vf_sel(vf_ne(suml2, vf_zero()), vf_div(sumlx, suml2), vf_zero());
    vf best = vf_mul(scale, sumlx);
    vf best_iscale = iscale0;
    /* In a lane that is not all-zero, |iscale*x| <= nmax + 1 (|x| <= |max|), where the 1.5*2^23
     * trick is exactly round-half-even: the trials use the cheaper float rounding. All-zero
     * lanes compute garbage either way and are discarded at the end. */
    const vf lo = vf_set1((float)-nmax), hi = vf_set1((float)(nmax - 1));
    /* The 18 trial scales do not depend on each other: sum two at a time (more independent
     * chains), then accept or reject them in the reference order. */
    static const int trials[18] = {-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int k = 0; k < 18; k += 2) {
        const int isa = trials[k], isb = trials[k + 1];
        const vf ia = vf_div(vf_set1(-((float)nmax + 0.1f * (float)isa)), max);
        const vf ib = vf_div(vf_set1(-((float)nmax + 0.1f * (float)isb)), max);
        vf slxa = vf_zero(), sl2a = vf_zero(), slxb = vf_zero(), sl2b = vf_zero();
        for (int i = 0; i < n; i++) {
            const vf wx = vf_mul(w[i], x[i]);
            const vf la = kl_level_f(vf_mul(ia, x[i]), lo, hi);
            const vf lb = kl_level_f(vf_mul(ib, x[i]), lo, hi);
            slxa = vf_add(slxa, vf_mul(wx, la));
            sl2a = vf_add(sl2a, vf_mul(vf_mul(w[i], la), la));
            slxb = vf_add(slxb, vf_mul(wx, lb));
            sl2b = vf_add(sl2b, vf_mul(vf_mul(w[i], lb), lb));
        }
        vm acc = vm_and(vf_gt(sl2a, vf_zero()), vf_gt(vf_mul(slxa, slxa), vf_mul(best, sl2a)));
        if (vm_any(acc)) {
            const vf s = vf_div(slxa, sl2a);
            scale = vf_sel(acc, s, scale);
            best = vf_sel(acc, vf_mul(s, slxa), best);
            best_iscale = vf_sel(acc, ia, best_iscale);
        }
        acc = vm_and(vf_gt(sl2b, vf_zero()), vf_gt(vf_mul(slxb, slxb), vf_mul(best, sl2b)));
        if (vm_any(acc)) {
            const vf s = vf_div(slxb, sl2b);
            scale = vf_sel(acc, s, scale);
            best = vf_sel(acc, vf_mul(s, slxb), best);
            best_iscale = vf_sel(acc, ib, best_iscale);
        }
    }
    const vi nm = vi_set1(nmax), z = vi_set1(0);
    for (int i = 0; i < n; i++) {
        const vi l = vi_add(kl_clamp(kl_nearest(vf_mul(best_iscale, x[i])), -nmax, nmax - 1), nm);
        L[i] = vi_sel(zero, z, l);
    }
    return vf_sel(zero, vf_zero(), scale);
}

/* kq_make_qkx2_quants (v3 = 0) / kq_make_qkx3_quants (v3 = 1, weights given) in each lane of
 * S (1 or 2) independent sets of 8 groups: x[s][i], w[s][i] -> L[s][i], the_min[s], returns in
 * scale[s]. The two variants differ only in the flat-group test (max == min vs max <= min).
 * Each trial depends on the previous one (the accepted min moves the next trial), so one set is
 * a serial chain of dependent sums; a second set gives the CPU an independent chain to overlap. */
KQ_ALWAYS_INLINE void kl_make_qkx_sets(
    const int S, int n, int nmax, vf x[][32], vf w[][32], vi L[][32], vf *the_min, vf *scale_out,
    float rmin, float rdelta, int nstep, int use_mad, int v3) {
    vf min[2], max[2], sum_w[2], sum_x[2], xlo[2], min0[2], scale[2], best[2], L_isc[2], L_min[2];
    vm flat[2];
    vf xm[2][32], la[2][32];
    const vf nmaxf = vf_set1((float)nmax);
    for (int s = 0; s < S; s++) {
        min[s] = x[s][0];
        max[s] = x[s][0];
        sum_w[s] = w[s][0];
        sum_x[s] = vf_mul(sum_w[s], x[s][0]);
        for (int i = 1; i < n; i++) {
            min[s] = vf_sel(vf_lt(x[s][i], min[s]), x[s][i], min[s]);
            max[s] = vf_sel(vf_gt(x[s][i], max[s]), x[s][i], max[s]);
            sum_w[s] = vf_add(sum_w[s], w[s][i]);
            sum_x[s] = vf_add(sum_x[s], vf_mul(w[s][i], x[s][i]));
        }
        xlo[s] = min[s];
        min[s] = vf_sel(vf_gt(min[s], vf_zero()), vf_zero(), min[s]);
        min0[s] = min[s];
        flat[s] = v3 ? vf_le(max[s], min[s]) : vf_eq(max[s], min[s]);
        for (int i = 0; i < n; i++) xm[s][i] = vf_sub(x[s][i], min[s]);
        const vf iscale0 = vf_div(nmaxf, vf_sub(max[s], min[s]));
        scale[s] = vf_div(vf_set1(1.0f), iscale0);
        best[s] = vf_zero();
        for (int i = 0; i < n; i++) {
            const vf l = vi_to_f(kl_clamp(kl_nearest(vf_mul(iscale0, xm[s][i])), 0, nmax));
            vf diff = vf_sub(vf_add(vf_mul(scale[s], l), min[s]), x[s][i]);
            diff = use_mad ? vf_abs(diff) : vf_mul(diff, diff);
            best[s] = vf_add(best[s], vf_mul(w[s][i], diff));
        }
        /* The accepted levels are recomputed at the end from the (iscale, min) that made them. */
        L_isc[s] = iscale0;
        L_min[s] = min[s];
    }
    const vf lim = vf_set1(4194303.0f);
    for (int is = 0; is <= nstep; ++is) {
        const vf c = vf_set1(rmin + rdelta * (float)is + (float)nmax);
        vf isc[2], sum_l[2], sum_l2[2], sum_xl[2];
        int fast[2];
        for (int s = 0; s < S; s++) {
            const vf range = vf_sub(max[s], min[s]);
            isc[s] = vf_div(c, range);
            /* v = isc*(x - min) is monotone in x, so it lies between its values at the lane's
             * smallest x and at max. Where that is within 2^22 in every (non-flat) lane, float
             * round-half-even equals the 1.5*2^23 trick and is cheaper; otherwise use the trick. */
            const vm ok = vm_or(flat[s], vm_and(vf_le(vf_abs(vf_mul(isc[s], range)), lim),
                                                vf_le(vf_abs(vf_mul(isc[s], vf_sub(xlo[s], min[s]))), lim)));
            fast[s] = vm_bits(ok) == 0xFF;
            sum_l[s] = sum_l2[s] = sum_xl[s] = vf_zero();
        }
#define KL_QKX_TRIAL_SUMS(LEVEL)                                       \
        for (int i = 0; i < n; i++) {                                  \
            for (int s = 0; s < S; s++) {                              \
                const vf v = vf_mul(isc[s], xm[s][i]);                 \
                const vf l = LEVEL;                                    \
                la[s][i] = l;                                          \
                const vf wl = vf_mul(w[s][i], l);                      \
                sum_l[s] = vf_add(sum_l[s], wl);                       \
                sum_l2[s] = vf_add(sum_l2[s], vf_mul(wl, l));          \
                sum_xl[s] = vf_add(sum_xl[s], vf_mul(wl, x[s][i]));    \
            }                                                          \
        }
        if (fast[0] && (S == 1 || fast[1])) {
            KL_QKX_TRIAL_SUMS(kl_level_f(v, vf_zero(), nmaxf))
        } else {
            KL_QKX_TRIAL_SUMS(vi_to_f(kl_clamp(kl_nearest(v), 0, nmax)))
        }
#undef KL_QKX_TRIAL_SUMS
        vf this_scale[2], this_min[2], err[2];
        vm dpos[2];
        int any = 0;
        for (int s = 0; s < S; s++) {
            const vf D = vf_sub(vf_mul(sum_w[s], sum_l2[s]), vf_mul(sum_l[s], sum_l[s]));
            dpos[s] = vf_gt(D, vf_zero());
            any |= vm_any(dpos[s]);
            this_scale[s] = vf_div(vf_sub(vf_mul(sum_w[s], sum_xl[s]), vf_mul(sum_x[s], sum_l[s])), D);
            this_min[s] = vf_div(vf_sub(vf_mul(sum_l2[s], sum_x[s]), vf_mul(sum_l[s], sum_xl[s])), D);
            const vm mpos = vf_gt(this_min[s], vf_zero());
            this_min[s] = vf_sel(mpos, vf_zero(), this_min[s]);
            this_scale[s] = vf_sel(mpos, vf_div(sum_xl[s], sum_l2[s]), this_scale[s]);
            err[s] = vf_zero();
        }
        if (!any) continue;
        for (int i = 0; i < n; i++) {
            for (int s = 0; s < S; s++) {
                vf diff = vf_sub(vf_add(vf_mul(this_scale[s], la[s][i]), this_min[s]), x[s][i]);
                diff = use_mad ? vf_abs(diff) : vf_mul(diff, diff);
                err[s] = vf_add(err[s], vf_mul(w[s][i], diff));
            }
        }
        for (int s = 0; s < S; s++) {
            const vm acc = vm_and(dpos[s], vf_lt(err[s], best[s]));
            if (vm_any(acc)) {
                L_isc[s] = vf_sel(acc, isc[s], L_isc[s]);
                L_min[s] = vf_sel(acc, min[s], L_min[s]);
                best[s] = vf_sel(acc, err[s], best[s]);
                scale[s] = vf_sel(acc, this_scale[s], scale[s]);
                min[s] = vf_sel(acc, this_min[s], min[s]);
                for (int i = 0; i < n; i++) xm[s][i] = vf_sub(x[s][i], min[s]);
            }
        }
    }
    const vi z = vi_set1(0);
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < n; i++) {
            const vi l = kl_clamp(kl_nearest(vf_mul(L_isc[s], vf_sub(x[s][i], L_min[s]))), 0, nmax);
            L[s][i] = vi_sel(flat[s], z, l);
        }
        the_min[s] = vf_neg(vf_sel(flat[s], min0[s], min[s]));
        scale_out[s] = vf_sel(flat[s], vf_zero(), scale[s]);
    }
}

/* One set of 8 groups. */
static vf kl_make_qkx(int n, int nmax, const vf *x, const vf *w, vi *L, vf *the_min, float rmin,
                      float rdelta, int nstep, int use_mad, int v3) {
    vf xs[1][32], ws[1][32], sc;
    vi Ls[1][32];
    memcpy(xs[0], x, (size_t)n * sizeof(vf));
    memcpy(ws[0], w, (size_t)n * sizeof(vf));
    kl_make_qkx_sets(1, n, nmax, xs, ws, Ls, the_min, &sc, rmin, rdelta, nstep, use_mad, v3);
    memcpy(L, Ls[0], (size_t)n * sizeof(vi));
    return sc;
}

/* kq_make_q3_quants(16, nmax, x, L, do_rmse = 1) for S sets of 8 groups (S <= 8), x[s][i].
 * The sweeps are a long serial chain per group (each step divides); running several sets in the
 * same loop gives the CPU independent chains to overlap. L[s][i] gets l + nmax. */
static void kl_make_q3_sets(int S, int nmax, vf x[8][16], vi L[8][16], vf out[8]) {
    enum { N = 16 };
    vf w[8][N], wx[8][N], sumlx[8], suml2[8];
    vi Li[8][N];
    vm zero[8];
    for (int s = 0; s < S; s++) {
        vf amax = vf_zero(), max = vf_zero();
        for (int i = 0; i < N; i++) {
            const vf ax = vf_abs(x[s][i]);
            const vm m = vf_gt(ax, amax);
            amax = vf_sel(m, ax, amax);
            max = vf_sel(m, x[s][i], max);
            w[s][i] = vf_mul(x[s][i], x[s][i]);
            wx[s][i] = vf_mul(w[s][i], x[s][i]);
        }
        zero[s] = vf_lt(amax, vf_set1(KQ_GROUP_MAX_EPS));
        const vf iscale = vf_div(vf_set1((float)-nmax), max);
        sumlx[s] = vf_zero();
        suml2[s] = vf_zero();
        for (int i = 0; i < N; i++) {
            Li[s][i] = kl_clamp(kl_nearest(vf_mul(iscale, x[s][i])), -nmax, nmax - 1);
            const vf l = vi_to_f(Li[s][i]);
            sumlx[s] = vf_add(sumlx[s], vf_mul(wx[s][i], l));
            suml2[s] = vf_add(suml2[s], vf_mul(vf_mul(w[s][i], l), l));
        }
    }
    /* A lane whose sweep changed nothing would change nothing in the next sweep either (same
     * state), so running the remaining sweeps on it is harmless: a set stops once none of its
     * lanes moved, and the loop once every set has stopped. */
    int active[8];
    for (int s = 0; s < S; s++) active[s] = 1;
    for (int itry = 0; itry < 5; ++itry) {
        vm changed[8];
        int any = 0;
        for (int s = 0; s < S; s++) changed[s] = vf_lt(vf_zero(), vf_zero());
        for (int i = 0; i < N; i++) {
            for (int s = 0; s < S; s++) {
                if (!active[s]) continue;
                const vf Lf = vi_to_f(Li[s][i]);
                const vf slx = vf_sub(sumlx[s], vf_mul(wx[s][i], Lf));
                const vm pos = vm_andnot(vf_gt(slx, vf_zero()), zero[s]);
                const vf sl2 = vf_sub(suml2[s], vf_mul(vf_mul(w[s][i], Lf), Lf));
                const vi nl = kl_clamp(kl_nearest(vf_div(vf_mul(x[s][i], sl2), slx)), -nmax, nmax - 1);
                const vm diff = vm_andnot(pos, vi_eq(nl, Li[s][i]));
                if (!vm_any(diff)) continue; /* the usual case: no lane proposes a new level */
                const vf nlf = vi_to_f(nl);
                const vf slx2 = vf_add(slx, vf_mul(wx[s][i], nlf));
                const vf sl22 = vf_add(sl2, vf_mul(vf_mul(w[s][i], nlf), nlf));
                const vm better = vm_and(vm_and(diff, vf_gt(sl22, vf_zero())),
                                         vf_gt(vf_mul(vf_mul(slx2, slx2), suml2[s]),
                                               vf_mul(vf_mul(sumlx[s], sumlx[s]), sl22)));
                if (!vm_any(better)) continue;
                Li[s][i] = vi_sel(better, nl, Li[s][i]);
                sumlx[s] = vf_sel(better, slx2, sumlx[s]);
                suml2[s] = vf_sel(better, sl22, suml2[s]);
                changed[s] = vm_or(changed[s], better);
            }
        }
        for (int s = 0; s < S; s++) {
            active[s] = active[s] && vm_any(changed[s]);
            any |= active[s];
        }
        if (!any) break;
    }
    const vi nm = vi_set1(nmax), z = vi_set1(0);
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < N; i++) L[s][i] = vi_sel(zero[s], z, vi_add(Li[s][i], nm));
        const vf r = vf_sel(vf_gt(suml2[s], vf_zero()), vf_div(sumlx[s], suml2[s]), vf_zero());
        out[s] = vf_sel(zero[s], vf_zero(), r);
    }
}

#endif /* KQ_LANES_SEARCH_H */
