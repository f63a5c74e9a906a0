/* Quantdesk k-quant library: public C API.
 * Every quantizer writes exactly the bytes ggml's reference quantizers write. */
#ifndef KQUANT_H
#define KQUANT_H
#include <stddef.h>
#include <stdint.h>

/* Instruction sets the dispatcher can pick. */
enum kq_isa { KQ_ISA_SCALAR = 0, KQ_ISA_AVX2 = 1, KQ_ISA_NEON = 2 };

/* Quant types, numbered as ggml numbers them (GGML_TYPE_*). */
enum kq_type { KQ_TYPE_Q8_0 = 8 };

/* The ISA in use: the best the CPU has, unless QUANTDESK_ISA or kq_set_isa chose another. */
int kq_active_isa(void);
/* Force an ISA (tests). Returns 0, or -1 when this CPU or build cannot run it. */
int kq_set_isa(int isa);
/* Quantize nrows rows of n_per_row float32 into dst. Returns bytes written, or -1 on bad arguments. */
int64_t kq_quantize_f32(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix);
#endif
