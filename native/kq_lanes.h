/* SIMD kernels written once over an 8-lane vector API (included by avx2.c and neon.c, which
 * define vf/vi/vm and the vf_* / vi_* / vm_* helpers before including this file).
 *
 * HOW THESE STAY BYTE-IDENTICAL TO THE SCALAR KERNELS
 * The scalar searches (scalar_search.c) are serial: every sum runs left to right over the
 * weights of ONE group. Here each of the 8 lanes runs that same serial computation for its own
 * group (a sub-block of a super-block, or a block of a row): lane g of x[i] is element i of
 * group g. Every operation is the same IEEE operation in the same order (no FMA, no
 * reassociation), "if (a < b) c = d" becomes a lane-wise compare and select, and a divide stays
 * a divide. Only exact operations (max/min searches, integer packing) are vectorised along a
 * group. Anything that runs once per super-block (choosing the super-block scale) stays scalar
 * and mirrors scalar_k.c line by line.
 */
#ifndef KQ_LANES_H
#define KQ_LANES_H

#include <math.h>
#include <string.h>

#include "kq_compiler.h"

#define KQ_CAT2(a, b) a##b
#define KQ_CAT(a, b) KQ_CAT2(a, b)
#define KQ_FN(type) KQ_CAT(KQ_CAT(kq_quantize_row_, type), KQ_CAT(_, KQ_ISA_SUFFIX))

static inline int kl_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* kq_nearest_int in every lane (round half to even through the 1.5*2^23 trick). */
static inline vi kl_nearest(vf a) {
    const vi b = vf_bits(vf_add(a, vf_set1(12582912.f)));
    return vi_sub(vi_and(b, vi_set1(0x007fffff)), vi_set1(0x00400000));
}
static inline vi kl_clamp(vi a, int lo, int hi) { return vi_max(vi_set1(lo), vi_min(a, vi_set1(hi))); }
/* (int8_t) of an int32: keep the low byte, sign-extended. */
static inline vi kl_sext8(vi a) { return vi_sra(vi_shl(a, 24), 24); }

/* roundf (half away from zero) then kq_round_i32's convention (INT32_MIN when out of range). */
static inline vi kl_round_i32(vf a) {
    const vf t = vf_trunc(a);
    const vm up = vf_ge(vf_abs(vf_sub(a, t)), vf_set1(0.5f));
    const vf one = vf_sel(vf_lt(a, vf_zero()), vf_set1(-1.0f), vf_set1(1.0f));
    return vf_trunc_i(vf_add(t, vf_sel(up, one, vf_zero())));
}

/* kq_fp32_to_fp16 in every lane (the result in the low 16 bits of each int32). */
static inline vi kl_fp16(vf f) {
    const vi x = vf_bits(f);
    const vi sign = vi_and(vi_shr(x, 16), vi_set1(0x8000));
    const vi ax = vi_and(x, vi_set1(0x7fffffff));
    /* normal range: re-bias and round the 13 dropped bits to even */
    const vi odd = vi_and(vi_shr(ax, 13), vi_set1(1));
    vi r = vi_shr(vi_add(vi_add(ax, vi_set1((int)0xc8000fffu)), odd), 13);
    /* subnormal: let the FPU round by adding 0.5 */
    const vi sub = vi_sub(vf_bits(vf_add(vi_bits(ax), vf_set1(0.5f))), vi_set1(0x3f000000));
    r = vi_sel(vi_gt(vi_set1(0x38800000), ax), sub, r);
    r = vi_sel(vi_gt(ax, vi_set1(0x477fefff)), vi_set1(0x7c00), r);
    r = vi_or(vi_and(r, vi_set1(0xffff)), sign);
    return vi_sel(vi_gt(ax, vi_set1(0x7f800000)), vi_or(vi_set1(0x7e00), sign), r); /* NaN: quiet, sign kept */
}

/* Transpose 8 groups into lanes: out[j] lane g = x[g*stride + j] (n a multiple of 8). */
static inline void kl_load_lanes(vf *out, const float *x, int stride, int n) {
    for (int j = 0; j < n; j += 8) vf_transpose8(out + j, x + j, stride);
}


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

/* ---------------------------------------------------------------------------------------
 * Legacy 32-weight block types
 * ------------------------------------------------------------------------------------- */

/* The first element of a block equal to zero (keeps the sign the serial min/max would keep). */
static inline float kl_first_zero(const float *x, int n) {
    for (int j = 0; j < n; j++)
        if (x[j] == 0.0f) return x[j];
    return 0.0f;
}

/* Signed value of largest |x| among 32, first occurrence; +0 when all are zero. */
static inline float kl_signed_absmax32(const float *x, const vf *v) {
    const vf a0 = vf_abs(v[0]), a1 = vf_abs(v[1]), a2 = vf_abs(v[2]), a3 = vf_abs(v[3]);
    const float amax = vf_hmax(vf_max(vf_max(a0, a1), vf_max(a2, a3)));
    if (!(amax > 0.0f)) return 0.0f;
    const vf am = vf_set1(amax);
    const uint32_t bits = (uint32_t)vm_bits(vf_eq(a0, am)) | ((uint32_t)vm_bits(vf_eq(a1, am)) << 8) |
                          ((uint32_t)vm_bits(vf_eq(a2, am)) << 16) | ((uint32_t)vm_bits(vf_eq(a3, am)) << 24);
    return x[kq_ctz32(bits)];
}

static inline void kl_min_max32(const float *x, const vf *v, float *min_out, float *max_out) {
    float mn = vf_hmin(vf_min(vf_min(v[0], v[1]), vf_min(v[2], v[3])));
    float mx = vf_hmax(vf_max(vf_max(v[0], v[1]), vf_max(v[2], v[3])));
    if (mn == 0.0f) mn = kl_first_zero(x, 32);
    if (mx == 0.0f) mx = kl_first_zero(x, 32);
    *min_out = mn;
    *max_out = mx;
}

/* Store 32 levels (int32 lanes, 4 vectors) as Q4 nibbles: byte j = L[j] | L[j+16] << 4. */
static inline void kl_pack_nibbles32(uint8_t *qs, const vi *q) {
    vi_store_u8(qs, vi_or(q[0], vi_shl(q[2], 4)));
    vi_store_u8(qs + 8, vi_or(q[1], vi_shl(q[3], 4)));
}

/* Q5 layout: low nibbles as Q4, fifth bits into a little-endian u32. */
static inline void kl_pack_q5(uint8_t *qh, uint8_t *qs, const vi *q) {
    const vi lo = vi_set1(0xF), b5 = vi_set1(0x10);
    vi n[4];
    uint32_t h = 0;
    for (int k = 0; k < 4; k++) {
        n[k] = vi_and(q[k], lo);
        h |= (uint32_t)vm_bits(vi_eq(vi_and(q[k], b5), b5)) << (8 * k);
    }
    kl_pack_nibbles32(qs, n);
    memcpy(qh, &h, 4);
}

/* The per-block scales of 8 blocks at once: lane g belongs to block g. The extremes are exact
 * whatever the order; d, 1/d and the fp16 conversions are the same IEEE operations the scalar
 * code does once per block. */

/* Q8_0: d = amax/127, l = roundf(x/d) (by multiplying with id = 1/d, as ggml does). */
static inline void kl_q8_0_block(const float *x, uint8_t *y, float id) {
    const vf vid = vf_set1(id);
    for (int k = 0; k < 4; k++) vi_store_i8(y + 8 * k, kl_sext8(kl_round_i32(vf_mul(vf_load(x + 8 * k), vid))));
}

void KQ_FN(q8_0)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, x += 256, y += 8 * 34) {
        vf am[8];
        for (int g = 0; g < 8; g++) {
            const float *xb = x + 32 * g;
            am[g] = vf_max(vf_max(vf_abs(vf_load(xb)), vf_abs(vf_load(xb + 8))),
                           vf_max(vf_abs(vf_load(xb + 16)), vf_abs(vf_load(xb + 24))));
        }
        const vf d = vf_div(vf_hmax8(am), vf_set1(127.0f));
        float id[8];
        int32_t h[8];
        vf_store(id, vf_sel(vf_ne(d, vf_zero()), vf_div(vf_set1(1.0f), d), vf_zero()));
        vi_store(h, kl_fp16(d));
        for (int g = 0; g < 8; g++) {
            kq_put_u16(y + 34 * g, (uint16_t)h[g]);
            kl_q8_0_block(x + 32 * g, y + 34 * g + 2, id[g]);
        }
    }
    for (; b < nb; b++, x += 32, y += 34) {
        const float amax = vf_hmax(vf_max(vf_max(vf_abs(vf_load(x)), vf_abs(vf_load(x + 8))),
                                          vf_max(vf_abs(vf_load(x + 16)), vf_abs(vf_load(x + 24)))));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kl_q8_0_block(x, y + 2, id);
    }
}

/* Position of the first element of 32 whose |x| equals amax (> 0). */
static inline float kl_first_absmax(const float *x, float amax) {
    const vf am = vf_set1(amax);
    uint32_t bits = 0;
    for (int k = 0; k < 4; k++) bits |= (uint32_t)vm_bits(vf_eq(vf_abs(vf_load(x + 8 * k)), am)) << (8 * k);
    return x[kq_ctz32(bits)];
}

/* Q4_0 / Q5_0 levels of one block: MIN(top, (int8_t)(x*id + bias)). */
static inline void kl_q40_q50_block(const float *x, uint8_t *y, float id, int five) {
    const vf vid = vf_set1(id), vb = vf_set1(five ? 16.5f : 8.5f);
    const vi top = vi_set1(five ? 31 : 15);
    vi q[4];
    for (int k = 0; k < 4; k++) q[k] = vi_min(kl_sext8(vf_trunc_i(vf_add(vf_mul(vf_load(x + 8 * k), vid), vb))), top);
    if (five) kl_pack_q5(y, y + 4, q);
    else kl_pack_nibbles32(y, q);
}

/* Q4_0 / Q5_0 without imatrix: d = max/-(8|16) with max the signed value of largest |x|. */
static void kl_row_q40_q50_ref(const float *x, uint8_t *y, int64_t n, int five) {
    const int bs = five ? 22 : 18;
    const float neg_half = five ? -16.0f : -8.0f;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, x += 256, y += 8 * bs) {
        /* The signed value of largest |x| is the block's max or its min, whichever is larger in
         * magnitude; only a tie (+a and -a both present) needs the first occurrence. */
        vf mn[8], mx[8];
        for (int g = 0; g < 8; g++) {
            const float *xb = x + 32 * g;
            const vf v0 = vf_load(xb), v1 = vf_load(xb + 8), v2 = vf_load(xb + 16), v3 = vf_load(xb + 24);
            mn[g] = vf_min(vf_min(v0, v1), vf_min(v2, v3));
            mx[g] = vf_max(vf_max(v0, v1), vf_max(v2, v3));
        }
        const vf vmin = vf_hmin8(mn), vmax = vf_hmax8(mx);
        const vf amin = vf_neg(vmin); /* |min| when min < 0 */
        vf smax = vf_sel(vf_gt(amin, vmax), vmin, vmax);
        smax = vf_sel(vm_and(vf_le(vmax, vf_zero()), vf_ge(vmin, vf_zero())), vf_zero(), smax); /* all zero: +0 */
        smax = vf_sel(vm_and(vf_le(vmax, vf_zero()), vf_lt(vmin, vf_zero())), vmin, smax);     /* no positive */
        const vm tie = vm_and(vf_eq(amin, vmax), vf_gt(vmax, vf_zero()));
        if (vm_any(tie)) {
            float t[8], amax[8];
            const int bits = vm_bits(tie);
            vf_store(t, smax);
            vf_store(amax, vmax);
            for (int g = 0; g < 8; g++)
                if (bits & (1 << g)) t[g] = kl_first_absmax(x + 32 * g, amax[g]);
            smax = vf_load(t);
        }
        float id[8];
        int32_t h[8];
        const vf d = vf_div(smax, vf_set1(neg_half));
        vf_store(id, vf_sel(vf_ne(d, vf_zero()), vf_div(vf_set1(1.0f), d), vf_zero()));
        vi_store(h, kl_fp16(d));
        for (int g = 0; g < 8; g++) {
            kq_put_u16(y + bs * g, (uint16_t)h[g]);
            kl_q40_q50_block(x + 32 * g, y + bs * g + 2, id[g], five);
        }
    }
    for (; b < nb; b++, x += 32, y += bs) {
        vf v[4];
        for (int k = 0; k < 4; k++) v[k] = vf_load(x + 8 * k);
        const float d = kl_signed_absmax32(x, v) / neg_half;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kl_q40_q50_block(x, y + 2, id, five);
    }
}

/* Q4_1 / Q5_1 levels of one block: (x-min)*id + 0.5 truncated (Q4_1: MIN(15, (int8_t)..)). */
static inline void kl_q41_q51_block(const float *x, uint8_t *y, float min, float id, int five) {
    const vf vid = vf_set1(id), vmin = vf_set1(min), h = vf_set1(0.5f);
    vi q[4];
    for (int k = 0; k < 4; k++) {
        const vi t = vf_trunc_i(vf_add(vf_mul(vf_sub(vf_load(x + 8 * k), vmin), vid), h));
        q[k] = five ? vi_and(t, vi_set1(0xFF)) : vi_min(kl_sext8(t), vi_set1(15));
    }
    if (five) kl_pack_q5(y, y + 4, q);
    else kl_pack_nibbles32(y, q);
}

/* Q4_1 / Q5_1 without imatrix: d = (max-min)/(15|31), m = min. */
static void kl_row_q41_q51_ref(const float *x, uint8_t *y, int64_t n, int five) {
    const int bs = five ? 24 : 20;
    const float top = five ? 31.0f : 15.0f;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, x += 256, y += 8 * bs) {
        vf mn[8], mx[8];
        for (int g = 0; g < 8; g++) {
            const float *xb = x + 32 * g;
            const vf v0 = vf_load(xb), v1 = vf_load(xb + 8), v2 = vf_load(xb + 16), v3 = vf_load(xb + 24);
            mn[g] = vf_min(vf_min(v0, v1), vf_min(v2, v3));
            mx[g] = vf_max(vf_max(v0, v1), vf_max(v2, v3));
        }
        vf vmin = vf_hmin8(mn), vmax = vf_hmax8(mx);
        /* a zero extreme keeps the sign of the block's first zero, as the serial scan does */
        if (vm_any(vm_or(vf_eq(vmin, vf_zero()), vf_eq(vmax, vf_zero())))) {
            float a[8], c[8];
            vf_store(a, vmin);
            vf_store(c, vmax);
            for (int g = 0; g < 8; g++) {
                if (a[g] == 0.0f) a[g] = kl_first_zero(x + 32 * g, 32);
                if (c[g] == 0.0f) c[g] = kl_first_zero(x + 32 * g, 32);
            }
            vmin = vf_load(a);
            vmax = vf_load(c);
        }
        const vf d = vf_div(vf_sub(vmax, vmin), vf_set1(top));
        float id[8], m[8];
        int32_t hd[8], hm[8];
        vf_store(id, vf_sel(vf_ne(d, vf_zero()), vf_div(vf_set1(1.0f), d), vf_zero()));
        vf_store(m, vmin);
        vi_store(hd, kl_fp16(d));
        vi_store(hm, kl_fp16(vmin));
        for (int g = 0; g < 8; g++) {
            kq_put_u16(y + bs * g, (uint16_t)hd[g]);
            kq_put_u16(y + bs * g + 2, (uint16_t)hm[g]);
            kl_q41_q51_block(x + 32 * g, y + bs * g + 4, m[g], id[g], five);
        }
    }
    for (; b < nb; b++, x += 32, y += bs) {
        vf v[4];
        for (int k = 0; k < 4; k++) v[k] = vf_load(x + 8 * k);
        float min, max;
        kl_min_max32(x, v, &min, &max);
        const float d = (max - min) / top;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kq_put_u16(y + 2, kq_fp32_to_fp16(min));
        kl_q41_q51_block(x, y + 4, min, id, five);
    }
}

/* sigma^2 of a whole row, serial as in scalar_legacy.c */
static float kl_row_sigma2(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t j = 0; j < n; ++j) s += x[j] * x[j];
    return s / n;
}

/* Legacy types with an importance matrix: 8 blocks at a time, one per lane.
 * kind: 0 = Q4_0, 1 = Q5_0 (make_qx_quants), 2 = Q4_1, 3 = Q5_1 (make_qkx3_quants). */
static void kl_row_legacy_imatrix(const float *x, uint8_t *y, int64_t n, const float *qw, int kind) {
    static const int bsz[4] = {18, 22, 20, 24};
    const int bs = bsz[kind];
    const float sigma2 = kl_row_sigma2(x, n);
    const int64_t nb = n / 32;
    float xpad[256], wpad[256];
    for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        const int cnt = nb - b0 < 8 ? (int)(nb - b0) : 8;
        const float *xs = x + 32 * b0, *ws = qw + 32 * b0;
        if (cnt < 8) { /* pad the missing lanes with copies of the last block */
            for (int g = 0; g < 8; g++) {
                const int src = g < cnt ? g : cnt - 1;
                memcpy(xpad + 32 * g, xs + 32 * src, 32 * sizeof(float));
                memcpy(wpad + 32 * g, ws + 32 * src, 32 * sizeof(float));
            }
            xs = xpad;
            ws = wpad;
        }
        vf xt[32], wt[32];
        vi Lt[32];
        kl_load_lanes(xt, xs, 32, 32);
        kl_load_lanes(wt, ws, 32, 32);
        const vf s2 = vf_set1(sigma2);
        for (int j = 0; j < 32; j++) wt[j] = vf_mul(wt[j], vf_sqrt(vf_add(s2, vf_mul(xt[j], xt[j]))));
        float d[8], m[8];
        if (kind < 2) {
            vf_store(d, kl_make_qx(32, kind == 0 ? 8 : 16, xt, wt, Lt));
        } else {
            vf mn;
            vf_store(d, kl_make_qkx(32, kind == 2 ? 15 : 31, xt, wt, Lt, &mn, -0.9f, 0.05f, 36, 0, 1));
            vf_store(m, mn);
        }
        int32_t Lb[32][8];
        for (int j = 0; j < 32; j++) vi_store(Lb[j], Lt[j]);
        for (int g = 0; g < cnt; g++) {
            uint8_t *yb = y + (b0 + g) * bs;
            kq_put_u16(yb, kq_fp32_to_fp16(d[g]));
            int off = 2;
            if (kind >= 2) {
                kq_put_u16(yb + 2, kq_fp32_to_fp16(-m[g]));
                off = 4;
            }
            if (kind == 0 || kind == 2) {
                for (int j = 0; j < 16; ++j) yb[off + j] = (uint8_t)(Lb[j][g] | (Lb[j + 16][g] << 4));
            } else {
                uint32_t qh = 0;
                for (int j = 0; j < 16; ++j) {
                    const int lo = Lb[j][g], hi = Lb[j + 16][g];
                    yb[off + 4 + j] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
                    qh |= (uint32_t)((lo & 0x10) >> 4) << j;
                    qh |= (uint32_t)((hi & 0x10) >> 4) << (j + 16);
                }
                memcpy(yb + off, &qh, 4);
            }
        }
    }
}

void KQ_FN(q4_0)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 0);
    else kl_row_q40_q50_ref(x, y, n, 0);
}
void KQ_FN(q5_0)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 1);
    else kl_row_q40_q50_ref(x, y, n, 1);
}
void KQ_FN(q4_1)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 2);
    else kl_row_q41_q51_ref(x, y, n, 0);
}
void KQ_FN(q5_1)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 3);
    else kl_row_q41_q51_ref(x, y, n, 1);
}

/* ---------------------------------------------------------------------------------------
 * K-quants (256-weight super-blocks)
 * ------------------------------------------------------------------------------------- */

static float kl_sum_squares(const float *x, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; ++i) s += x[i] * x[i];
    return s;
}

/* Packing works on 8 levels at a time in a uint64_t (each level in its own byte, so shifts and
 * masks never carry across levels): the same bytes as the per-level loops of scalar_k.c. */
static inline uint64_t kl_ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void kl_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
#define KL_BYTES(b) (0x0101010101010101ull * (uint64_t)(b))

/* Q2_K/Q3_K: qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6 (levels 0..3). */
static void kl_pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l += 8)
            kl_st64(qs + j / 4 + l, kl_ld64(L + j + l) | (kl_ld64(L + j + l + 32) << 2) |
                                        (kl_ld64(L + j + l + 64) << 4) | (kl_ld64(L + j + l + 96) << 6));
}

/* Re-quantize 16 weights with scale d and offset dm: clamp(nearest((x + dm)/d), lo, hi) + add. */
static inline void kl_requant16(const float *x, float d, float dm, int lo, int hi, int add, uint8_t *L) {
    const vf vd = vf_set1(d), vdm = vf_set1(dm);
    for (int k = 0; k < 2; k++) {
        const vi l = kl_clamp(kl_nearest(vf_div(vf_add(vf_load(x + 8 * k), vdm), vd)), lo, hi);
        vi_store_u8(L + 8 * k, vi_add(l, vi_set1(add)));
    }
}
/* Same without the offset (x / d). */
static inline void kl_requant16_nooff(const float *x, float d, int lo, int hi, int add, uint8_t *L) {
    const vf vd = vf_set1(d);
    for (int k = 0; k < 2; k++) {
        const vi l = kl_clamp(kl_nearest(vf_div(vf_load(x + 8 * k), vd)), lo, hi);
        vi_store_u8(L + 8 * k, vi_add(l, vi_set1(add)));
    }
}

/* Search levels of lane g (n elements) into L. */
static inline void kl_lane_levels(const vi *Lt, int n, int g, uint8_t *L) {
    int32_t t[32][8];
    for (int i = 0; i < n; i++) vi_store(t[i], Lt[i]);
    for (int i = 0; i < n; i++) L[i] = (uint8_t)t[i][g];
}

/* ============================== Q2_K ============================== */

void KQ_FN(q2_k)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 84) {
        float scales[16], mins[16];
        vi Lt[2][16];
        if (!qw) {
            for (int s = 0; s < 2; s++) {
                vf xt[16], wt[16], mn;
                kl_load_lanes(xt, x + 128 * s, 16, 16);
                for (int l = 0; l < 16; l++) wt[l] = vf_abs(xt[l]);
                vf_store(scales + 8 * s, kl_make_qkx(16, 3, xt, wt, Lt[s], &mn, -0.5f, 0.1f, 15, 1, 0));
                vf_store(mins + 8 * s, mn);
            }
            float max_scale = 0.0f, max_min = 0.0f;
            for (int j = 0; j < 16; ++j) {
                if (scales[j] > max_scale) max_scale = scales[j];
                if (mins[j] > max_min) max_min = mins[j];
            }
            if (max_scale > 0) {
                const float iscale = 15.f / max_scale;
                for (int j = 0; j < 16; ++j) y[j] = (uint8_t)kq_nearest_int(iscale * scales[j]);
                kq_put_u16(y + 80, kq_fp32_to_fp16(max_scale / 15.f));
            } else {
                memset(y, 0, 16);
                kq_put_u16(y + 80, kq_fp32_to_fp16(0.0f));
            }
            if (max_min > 0) {
                const float iscale = 15.f / max_min;
                for (int j = 0; j < 16; ++j) y[j] = (uint8_t)(y[j] | ((unsigned)kq_nearest_int(iscale * mins[j]) << 4));
                kq_put_u16(y + 82, kq_fp32_to_fp16(max_min / 15.f));
            } else {
                kq_put_u16(y + 82, kq_fp32_to_fp16(0.0f));
            }
        } else {
            const float *qwb = qw + QK_K * i;
            const float sigma2 = kl_sum_squares(x, QK_K) / QK_K;
            float sw[16];
            uint8_t Ls[16], Lm[16];
            for (int s = 0; s < 2; s++) {
                vf xt[16], wt[16], mn;
                kl_load_lanes(xt, x + 128 * s, 16, 16);
                kl_load_lanes(wt, qwb + 128 * s, 16, 16);
                const vf s2 = vf_set1(sigma2);
                vf sumw = vf_zero();
                for (int l = 0; l < 16; l++) {
                    wt[l] = vf_mul(wt[l], vf_sqrt(vf_add(s2, vf_mul(xt[l], xt[l]))));
                    sumw = vf_add(sumw, wt[l]);
                }
                vf_store(sw + 8 * s, sumw);
                vf_store(scales + 8 * s, kl_make_qkx(16, 3, xt, wt, Lt[s], &mn, -0.9f, 0.05f, 36, 0, 1));
                vf_store(mins + 8 * s, mn);
            }
            const float dm = kq_make_qp_quants(16, 15, scales, Ls, sw);
            const float mm = kq_make_qp_quants(16, 15, mins, Lm, sw);
            kq_put_u16(y + 80, kq_fp32_to_fp16(dm));
            kq_put_u16(y + 82, kq_fp32_to_fp16(mm));
            for (int j = 0; j < 16; ++j) y[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        }
        const float dall = kq_fp16_to_fp32(kq_get_u16(y + 80));
        const float dmin = kq_fp16_to_fp32(kq_get_u16(y + 82));
        for (int j = 0; j < 16; ++j) {
            const float d = dall * (y[j] & 0xF);
            if (!d) {
                kl_lane_levels(Lt[j / 8], 16, j % 8, L + 16 * j);
                continue;
            }
            const float dm = dmin * (y[j] >> 4);
            kl_requant16(x + 16 * j, d, dm, 0, 3, 0, L + 16 * j);
        }
        kl_pack_2bit(L, y + 16);
    }
}

/* ============================== Q3_K ============================== */

static void kl_q3_k_pack_scales(const int *ls, uint8_t *sc) {
    memset(sc, 0, 12);
    for (int j = 0; j < 16; ++j) {
        const int l = ls[j];
        if (j < 8) sc[j] = (uint8_t)(l & 0xF);
        else sc[j - 8] = (uint8_t)(sc[j - 8] | ((l & 0xF) << 4));
        sc[j % 4 + 8] = (uint8_t)(sc[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
    }
}

static inline int kl_q3_k_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* Level search of the reference path for nsb (<= 4) super-blocks at once (2 lane sets each). */
static void kl_q3_k_search_ref(const float *x, int nsb, float scales[4][16], vi Lt[8][16]) {
    vf xt[8][16], sc[8];
    for (int s = 0; s < 2 * nsb; s++) kl_load_lanes(xt[s], x + 128 * s, 16, 16);
    kl_make_q3_sets(2 * nsb, 4, xt, Lt, sc);
    for (int k = 0; k < nsb; k++) {
        vf_store(scales[k], sc[2 * k]);
        vf_store(scales[k] + 8, sc[2 * k + 1]);
    }
}

/* Everything after the level search of one super-block (scalar_k.c's Q3_K steps). */
static void kl_q3_k_finish(const float *x, uint8_t *y, const float *scales, vi Lt[2][16], const float *qwb) {
    uint8_t L[QK_K];
    int ls[16];
    if (!qwb) {
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; ++j) {
            const float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) {
                const int8_t l = (int8_t)kq_nearest_int(iscale * scales[j]);
                ls[j] = kl_clampi(l, -32, 31) + 32;
            }
            kl_q3_k_pack_scales(ls, y + 96);
            kq_put_u16(y + 108, kq_fp32_to_fp16(1 / iscale));
        } else {
            memset(y + 96, 0, 12);
            kq_put_u16(y + 108, kq_fp32_to_fp16(0.0f));
        }
    }
    const float dall = kq_fp16_to_fp32(kq_get_u16(y + 108));
    for (int j = 0; j < 16; ++j) {
        const float d = dall * (int8_t)kl_q3_k_scale(y + 96, j);
        if (!d) {
            kl_lane_levels(Lt[j / 8], 16, j % 8, L + 16 * j);
            continue;
        }
        kl_requant16_nooff(x + 16 * j, d, -4, 3, 4, L + 16 * j);
    }
    /* levels 0..7: bit 2 goes to hmask[j % 32] bit j / 32, the low two bits to qs */
    for (int m = 0; m < 32; m += 8) {
        uint64_t hm = 0;
        for (int k = 0; k < 8; k++) {
            const uint64_t w = kl_ld64(L + 32 * k + m);
            hm |= ((w >> 2) & KL_BYTES(1)) << k;
            kl_st64(L + 32 * k + m, w & KL_BYTES(3));
        }
        kl_st64(y + m, hm);
    }
    kl_pack_2bit(L, y + 32);
}

void KQ_FN(q3_k)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const int64_t nb = n / QK_K;
    if (!qw) {
        for (int64_t i = 0; i < nb; i += 4) {
            const int nsb = nb - i < 4 ? (int)(nb - i) : 4;
            float scales[4][16];
            vi Lt[8][16];
            kl_q3_k_search_ref(x + QK_K * i, nsb, scales, Lt);
            for (int k = 0; k < nsb; k++)
                kl_q3_k_finish(x + QK_K * (i + k), y + 110 * (i + k), scales[k], &Lt[2 * k], NULL);
        }
        return;
    }
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 110) {
        float scales[16];
        int ls[16];
        vi Lt[2][16];
        const float *qwb = qw + QK_K * i;
        const float sigma2 = 2 * kl_sum_squares(x, QK_K) / QK_K;
        float sw[16];
        for (int s = 0; s < 2; s++) {
            vf xt[16], wt[16];
            kl_load_lanes(xt, x + 128 * s, 16, 16);
            kl_load_lanes(wt, qwb + 128 * s, 16, 16);
            const vf s2 = vf_set1(sigma2);
            vf sumw = vf_zero();
            for (int l = 0; l < 16; l++) {
                wt[l] = vf_mul(wt[l], vf_sqrt(vf_add(s2, vf_mul(xt[l], xt[l]))));
                sumw = vf_add(sumw, wt[l]);
            }
            vf_store(sw + 8 * s, sumw);
            vf_store(scales + 8 * s, kl_make_qx(16, 4, xt, wt, Lt[s]));
        }
        int8_t Ls[16];
        const float d_block = kq_make_qx_quants(16, 32, scales, Ls, 1, sw);
        for (int j = 0; j < 16; ++j) ls[j] = Ls[j];
        kl_q3_k_pack_scales(ls, y + 96);
        kq_put_u16(y + 108, kq_fp32_to_fp16(d_block));
        kl_q3_k_finish(x, y, scales, Lt, qwb);
    }
}

/* ============================== Q4_K / Q5_K ============================== */

static void kl_k4_pack_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *sc) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            sc[j - 4] = (uint8_t)(sc[j - 4] | ((ls[j] >> 4) << 6));
            sc[j] = (uint8_t)(sc[j] | ((lm[j] >> 4) << 6));
        }
    }
}

static inline void kl_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The sub-block searches of nsb (1 or 2) consecutive super-blocks, one lane set each. */
static void kl_k45_search(const float *x, const float *qw, int nsb, int nmax, float scales[2][8],
                          float mins[2][8], float sw[2][8], vi Lt[2][32]) {
    vf xt[2][32], wt[2][32], mn[2], sc[2];
    for (int s = 0; s < nsb; s++) {
        const float *xs = x + QK_K * s;
        kl_load_lanes(xt[s], xs, 32, 32);
        if (!qw) {
            vf q = vf_zero();
            for (int l = 0; l < 32; l++) q = vf_add(q, vf_mul(xt[s][l], xt[s][l]));
            const vf av_x = vf_sqrt(vf_div(q, vf_set1(32.0f)));
            for (int l = 0; l < 32; l++) wt[s][l] = vf_add(av_x, vf_abs(xt[s][l]));
        } else {
            const vf s2 = vf_set1(2 * kl_sum_squares(xs, QK_K) / QK_K);
            kl_load_lanes(wt[s], qw + QK_K * s, 32, 32);
            vf sumw = vf_zero();
            for (int l = 0; l < 32; l++) {
                wt[s][l] = vf_mul(wt[s][l], vf_sqrt(vf_add(s2, vf_mul(xt[s][l], xt[s][l]))));
                sumw = vf_add(sumw, wt[s][l]);
            }
            vf_store(sw[s], sumw);
        }
    }
    const float rmin = qw ? -0.9f : (nmax == 15 ? -1.f : -0.5f);
    const float rdelta = qw ? 0.05f : 0.1f;
    const int nstep = qw ? 36 : (nmax == 15 ? 20 : 15);
    if (nsb == 2) kl_make_qkx_sets(2, 32, nmax, xt, wt, Lt, mn, sc, rmin, rdelta, nstep, 0, qw != NULL);
    else kl_make_qkx_sets(1, 32, nmax, xt, wt, Lt, mn, sc, rmin, rdelta, nstep, 0, qw != NULL);
    for (int s = 0; s < nsb; s++) {
        vf_store(scales[s], sc[s]);
        vf_store(mins[s], mn[s]);
    }
}

/* Everything after the search for one super-block: scales into y[0..15], levels into L. */
static void kl_k45_finish(const float *x, uint8_t *y, uint8_t *L, const float *qwb, int nmax,
                          const float *scales, const float *mins, const float *sw, vi *Lt) {
    uint8_t ls[8], lm[8];
    if (!qwb) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; ++j) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; ++j) {
            const uint8_t sc = (uint8_t)kq_nearest_int(inv_scale * scales[j]);
            const uint8_t m = (uint8_t)kq_nearest_int(inv_min * mins[j]);
            ls[j] = sc < 63 ? sc : 63;
            lm[j] = m < 63 ? m : 63;
        }
        kl_k4_pack_scales(ls, lm, y + 4);
        kq_put_u16(y, kq_fp32_to_fp16(max_scale / 63.f));
        kq_put_u16(y + 2, kq_fp32_to_fp16(max_min / 63.f));
    } else {
        const float d_block = kq_make_qp_quants(8, 63, scales, ls, sw);
        const float m_block = kq_make_qp_quants(8, 63, mins, lm, sw);
        if (nmax == 31) {
            for (int j = 0; j < 8; ++j) {
                if (ls[j] > 63) ls[j] = 63;
                if (lm[j] > 63) lm[j] = 63;
            }
        }
        kl_k4_pack_scales(ls, lm, y + 4);
        kq_put_u16(y, kq_fp32_to_fp16(d_block));
        kq_put_u16(y + 2, kq_fp32_to_fp16(m_block));
    }
    const float dall = kq_fp16_to_fp32(kq_get_u16(y));
    const float dmin = kq_fp16_to_fp32(kq_get_u16(y + 2));
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        kl_k4_scale_min(j, y + 4, &sc, &m);
        const float d = dall * sc;
        if (!d) {
            kl_lane_levels(Lt, 32, j, L + 32 * j);
            continue;
        }
        const float dm = dmin * m;
        kl_requant16(x + 32 * j, d, dm, 0, nmax, 0, L + 32 * j);
        kl_requant16(x + 32 * j + 16, d, dm, 0, nmax, 0, L + 32 * j + 16);
    }
}

/* Q4_K / Q5_K rows: search, then pack each super-block. */
static void kl_row_k45(const float *x, uint8_t *y, int64_t n, const float *qw, int nmax) {
    const int bs = nmax == 15 ? 144 : 176;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i += 1) {
        /* one super-block per search: measured faster than two interleaved (the accept branch is
         * predictable, so the CPU already overlaps consecutive trials) */
        const int nsb = 1;
        float scales[2][8], mins[2][8], sw[2][8];
        vi Lt[2][32];
        kl_k45_search(x + QK_K * i, qw ? qw + QK_K * i : NULL, nsb, nmax, scales, mins, sw, Lt);
        for (int k = 0; k < nsb; k++) {
            const float *xb = x + QK_K * (i + k);
            uint8_t *yb = y + bs * (i + k);
            uint8_t L[QK_K];
            kl_k45_finish(xb, yb, L, qw ? qw + QK_K * (i + k) : NULL, nmax, scales[k], mins[k], sw[k], Lt[k]);
            if (nmax == 15) {
                uint8_t *q = yb + 16;
                for (int j = 0; j < QK_K; j += 64, q += 32)
                    for (int l = 0; l < 32; l += 8) kl_st64(q + l, kl_ld64(L + j + l) | (kl_ld64(L + j + l + 32) << 4));
            } else {
                /* levels 0..31: low nibbles to ql, bit 4 of L[64i + j] to qh[j] bit 2i, of L[64i + 32 + j] to bit 2i+1 */
                uint8_t *qh = yb + 16, *ql = yb + 48;
                for (int j = 0; j < 32; j += 8) {
                    uint64_t h = 0;
                    for (int r = 0; r < 4; r++) {
                        const uint64_t a = kl_ld64(L + 64 * r + j), b = kl_ld64(L + 64 * r + 32 + j);
                        h |= ((a >> 4) & KL_BYTES(1)) << (2 * r);
                        h |= ((b >> 4) & KL_BYTES(1)) << (2 * r + 1);
                        kl_st64(ql + 32 * r + j, (a & KL_BYTES(0xF)) | ((b & KL_BYTES(0xF)) << 4));
                    }
                    kl_st64(qh + j, h);
                }
            }
        }
    }
}

void KQ_FN(q4_k)(const float *x, uint8_t *y, int64_t n, const float *qw) { kl_row_k45(x, y, n, qw, 15); }
void KQ_FN(q5_k)(const float *x, uint8_t *y, int64_t n, const float *qw) { kl_row_k45(x, y, n, qw, 31); }

/* ============================== Q6_K ============================== */

void KQ_FN(q6_k)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 210) {
        float scales[16];
        vi Lt[2][16];
        for (int s = 0; s < 2; s++) {
            vf xt[16], wt[16];
            kl_load_lanes(xt, x + 128 * s, 16, 16);
            if (qw) kl_load_lanes(wt, qw + QK_K * i + 128 * s, 16, 16);
            vf_store(scales + 8 * s, kl_make_qx(16, 32, xt, qw ? wt : NULL, Lt[s]));
        }
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int ib = 0; ib < 16; ++ib) {
            const float a = fabsf(scales[ib]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[ib]; }
        }
        if (max_abs_scale < KQ_GROUP_MAX_EPS) {
            memset(y, 0, 210);
            continue;
        }
        const float iscale = -128.f / max_scale;
        kq_put_u16(y + 208, kq_fp32_to_fp16(1 / iscale));
        int8_t *sc = (int8_t *)(y + 192);
        for (int ib = 0; ib < 16; ++ib) {
            const int v = kq_nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(v < 127 ? v : 127);
        }
        const float dall = kq_fp16_to_fp32(kq_get_u16(y + 208));
        for (int j = 0; j < 16; ++j) {
            const float d = dall * sc[j];
            if (!d) {
                kl_lane_levels(Lt[j / 8], 16, j % 8, L + 16 * j);
                continue;
            }
            kl_requant16_nooff(x + 16 * j, d, -32, 31, 32, L + 16 * j);
        }
        /* levels 0..63: low nibbles to ql, the top two bits to qh */
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l += 8) {
                const uint64_t a = kl_ld64(L + j + l), b = kl_ld64(L + j + l + 32);
                const uint64_t c = kl_ld64(L + j + l + 64), e = kl_ld64(L + j + l + 96);
                const uint64_t lo = KL_BYTES(0xF), hi = KL_BYTES(3);
                kl_st64(ql + l, (a & lo) | ((c & lo) << 4));
                kl_st64(ql + l + 32, (b & lo) | ((e & lo) << 4));
                kl_st64(qh + l, ((a >> 4) & hi) | (((b >> 4) & hi) << 2) | (((c >> 4) & hi) << 4) | (((e >> 4) & hi) << 6));
            }
        }
    }
}


/* ============================== IQ4_NL / IQ4_XS ============================== */

/* Code book index of x as scalar_iq4.c's nearest_code picks it: value k once 2x reaches
 * values[k-1] + values[k] (near a midpoint the reference's float differences x - v[k-1] and
 * v[k] - x are exact, so its strict test is this one), and index 15 for NaN, which falls
 * through every comparison of the reference's bisection. */
#if defined(__GNUC__)
#define KL_UNROLL16 _Pragma("GCC unroll 16")
#else
#define KL_UNROLL16
#endif

typedef struct {
    vf thr[16]; /* thr[k] = values[k-1] + values[k], k = 1..15 */
    vf dlt[16]; /* dlt[k] = values[k] - values[k-1] */
    vf first, last;
} kl_iq4_tab;

/* The code book as vectors, built once per call (kq_iq4nl_values lives in another file, so
 * the compiler could not fold these constants inside the loops). */
static void kl_iq4_init(kl_iq4_tab *t) {
    for (int k = 1; k < 16; k++) {
        t->thr[k] = vf_set1((float)(kq_iq4nl_values[k - 1] + kq_iq4nl_values[k]));
        t->dlt[k] = vf_set1((float)(kq_iq4nl_values[k] - kq_iq4nl_values[k - 1]));
    }
    t->first = vf_set1((float)kq_iq4nl_values[0]);
    t->last = vf_set1((float)kq_iq4nl_values[15]);
}

KQ_ALWAYS_INLINE vi kl_iq4_index(const kl_iq4_tab *t, vf x) {
    const vf x2 = vf_add(x, x);
    vi c[16];
    c[0] = vi_set1(0);
    KL_UNROLL16
    for (int k = 1; k < 16; k++) c[k] = vi_sel(vf_ge(x2, t->thr[k]), vi_set1(1), vi_set1(0));
    /* tree sum: short dependency chains (small integers, so the order cannot matter) */
    KL_UNROLL16
    for (int k = 0; k < 16; k += 2) c[k] = vi_add(c[k], c[k + 1]);
    KL_UNROLL16
    for (int k = 0; k < 16; k += 4) c[k] = vi_add(c[k], c[k + 2]);
    c[0] = vi_add(c[0], c[4]);
    c[8] = vi_add(c[8], c[12]);
    c[0] = vi_add(c[0], c[8]);
    return vi_sel(vf_ne(x, x), vi_set1(15), c[0]);
}
/* values[index(x)] as a float, built from the same threshold tests (small integers: exact). */
KQ_ALWAYS_INLINE vf kl_iq4_value(const kl_iq4_tab *t, vf x) {
    const vf x2 = vf_add(x, x);
    vf c[16];
    c[0] = t->first;
    KL_UNROLL16
    for (int k = 1; k < 16; k++) c[k] = vf_sel(vf_ge(x2, t->thr[k]), t->dlt[k], vf_zero());
    KL_UNROLL16
    for (int k = 0; k < 16; k += 2) c[k] = vf_add(c[k], c[k + 1]);
    KL_UNROLL16
    for (int k = 0; k < 16; k += 4) c[k] = vf_add(c[k], c[k + 2]);
    c[0] = vf_add(c[0], c[4]);
    c[8] = vf_add(c[8], c[12]);
    c[0] = vf_add(c[0], c[8]);
    return vf_sel(vf_ne(x, x), t->last, c[0]);
}

/* scalar_iq4.c's block_scale for 8 blocks of 32 (one per lane). */
static vf kl_iq4_block_scale(const kl_iq4_tab *t, const vf *x, const vf *w) {
    vf amax = vf_zero(), max = vf_zero();
    for (int j = 0; j < 32; j++) {
        const vf ax = vf_abs(x[j]);
        const vm m = vf_gt(ax, amax);
        amax = vf_sel(m, ax, amax);
        max = vf_sel(m, x[j], max);
    }
    const vm zero = vf_lt(amax, vf_set1(KQ_GROUP_MAX_EPS));
    vf d = vf_div(vf_neg(max), vf_set1((float)kq_iq4nl_values[0]));
    vf id = vf_div(vf_set1(1.0f), d);
    vf sumqx = vf_zero(), sumq2 = vf_zero();
    for (int j = 0; j < 32; j++) {
        const vf q = kl_iq4_value(t, vf_mul(id, x[j]));
        const vf wq = vf_mul(w[j], q);
        sumqx = vf_add(sumqx, vf_mul(wq, x[j]));
        sumq2 = vf_add(sumq2, vf_mul(wq, q));
    }
    d = vf_sel(vf_gt(sumq2, vf_zero()), vf_div(sumqx, sumq2), vf_zero());
    vf best = vf_mul(d, sumqx);
    for (int itry = -7; itry <= 7; ++itry) {
        id = vf_div(vf_set1((float)(itry + kq_iq4nl_values[0])), max);
        sumqx = vf_zero();
        sumq2 = vf_zero();
        for (int j = 0; j < 32; j++) {
            const vf q = kl_iq4_value(t, vf_mul(id, x[j]));
            const vf wq = vf_mul(w[j], q);
            sumqx = vf_add(sumqx, vf_mul(wq, x[j]));
            sumq2 = vf_add(sumq2, vf_mul(wq, q));
        }
        const vm acc = vm_and(vf_gt(sumq2, vf_zero()), vf_gt(vf_mul(sumqx, sumqx), vf_mul(best, sumq2)));
        if (vm_any(acc)) {
            const vf nd = vf_div(sumqx, sumq2);
            d = vf_sel(acc, nd, d);
            best = vf_sel(acc, vf_mul(nd, sumqx), best);
        }
    }
    return vf_sel(zero, vf_zero(), d);
}

/* Weights of 8 blocks of 32 (lanes): qw*sqrt(sigma2 + x^2), or x^2 without an imatrix. */
static inline void kl_iq4_weights(const vf *xt, vf *wt, const vf *qwt, vf sigma2) {
    for (int j = 0; j < 32; j++)
        wt[j] = qwt ? vf_mul(qwt[j], vf_sqrt(vf_add(sigma2, vf_mul(xt[j], xt[j])))) : vf_mul(xt[j], xt[j]);
}

/* 32 code indices of x*id, packed: byte j = L[j] | L[j+16] << 4. */
static inline void kl_iq4_pack(const kl_iq4_tab *t, const float *x, float id, uint8_t *qs) {
    const vf vid = vf_set1(id);
    vi q[4];
    for (int k = 0; k < 4; k++) q[k] = kl_iq4_index(t, vf_mul(vid, vf_load(x + 8 * k)));
    kl_pack_nibbles32(qs, q);
}

void KQ_FN(iq4_nl)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    kl_iq4_tab tab;
    kl_iq4_init(&tab);
    const int64_t nb = n / 32;
    float xpad[256], wpad[256];
    for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        const int cnt = nb - b0 < 8 ? (int)(nb - b0) : 8;
        const float *xs = x + 32 * b0, *ws = qw ? qw + 32 * b0 : NULL;
        if (cnt < 8) {
            for (int g = 0; g < 8; g++) {
                const int src = g < cnt ? g : cnt - 1;
                memcpy(xpad + 32 * g, xs + 32 * src, 32 * sizeof(float));
                if (ws) memcpy(wpad + 32 * g, ws + 32 * src, 32 * sizeof(float));
            }
            xs = xpad;
            ws = ws ? wpad : NULL;
        }
        vf xt[32], wt[32], qwt[32];
        kl_load_lanes(xt, xs, 32, 32);
        vf s = vf_zero();
        for (int j = 0; j < 32; j++) s = vf_add(s, vf_mul(xt[j], xt[j]));
        s = vf_mul(s, vf_set1(2.f / 32)); /* block_sigma2: s *= 2.f/n */
        if (ws) kl_load_lanes(qwt, ws, 32, 32);
        kl_iq4_weights(xt, wt, ws ? qwt : NULL, s);
        float d[8];
        vf_store(d, kl_iq4_block_scale(&tab, xt, wt));
        for (int g = 0; g < cnt; g++) {
            uint8_t *yb = y + (b0 + g) * 18;
            kq_put_u16(yb, kq_fp32_to_fp16(d[g]));
            const float id = d[g] ? 1 / d[g] : 0;
            kl_iq4_pack(&tab, x + 32 * (b0 + g), id, yb + 2);
        }
    }
}

void KQ_FN(iq4_xs)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    kl_iq4_tab tab;
    kl_iq4_init(&tab);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 136) {
        const float *qwb = qw ? qw + QK_K * i : NULL;
        float s2 = 0.0f;
        for (int j = 0; j < QK_K; ++j) s2 += x[j] * x[j];
        s2 *= 2.f / QK_K;
        vf xt[32], wt[32], qwt[32];
        kl_load_lanes(xt, x, 32, 32);
        if (qwb) kl_load_lanes(qwt, qwb, 32, 32);
        kl_iq4_weights(xt, wt, qwb ? qwt : NULL, vf_set1(s2));
        float scales[8];
        vf_store(scales, kl_iq4_block_scale(&tab, xt, wt));
        float max_scale = 0.0f, amax_scale = 0.0f;
        for (int ib = 0; ib < 8; ++ib) {
            const float a = fabsf(scales[ib]);
            if (a > amax_scale) { amax_scale = a; max_scale = scales[ib]; }
        }
        const float d = -max_scale / 32;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        const float id = d ? 1 / d : 0.f;
        uint16_t scales_h = 0;
        uint8_t *scales_l = y + 4;
        memset(scales_l, 0, 4);
        for (int ib = 0; ib < 8; ++ib) {
            int l = kq_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : (l > 31 ? 31 : l);
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            kl_iq4_pack(&tab, x + 32 * ib, idl, y + 8 + 16 * ib);
            l += 32;
            scales_l[ib / 2] = (uint8_t)(scales_l[ib / 2] | ((l & 0xF) << (4 * (ib % 2))));
            scales_h = (uint16_t)(scales_h | ((l >> 4) << (2 * ib)));
        }
        kq_put_u16(y + 2, scales_h);
    }
}

#endif /* KQ_LANES_H */
