/* Quantdesk k-quant library: public C API.
 *
 * Every quantizer writes exactly the bytes ggml's `ggml_quantize_chunk` writes (the llama.cpp
 * reference), whatever instruction set the dispatcher picks. Types are numbered as ggml numbers
 * them (enum ggml_type), so a GGUF tensor's type id can be passed straight through.
 */
#ifndef KQUANT_H
#define KQUANT_H
#include <stddef.h>
#include <stdint.h>

/* Instruction sets the dispatcher can pick. */
enum kq_isa { KQ_ISA_SCALAR = 0, KQ_ISA_AVX2 = 1, KQ_ISA_NEON = 2 };

/* Quant types (ggml's GGML_TYPE_* numbers). */
enum kq_type {
    KQ_TYPE_Q4_0 = 2, KQ_TYPE_Q4_1 = 3, KQ_TYPE_Q5_0 = 6, KQ_TYPE_Q5_1 = 7, KQ_TYPE_Q8_0 = 8,
    KQ_TYPE_Q2_K = 10, KQ_TYPE_Q3_K = 11, KQ_TYPE_Q4_K = 12, KQ_TYPE_Q5_K = 13, KQ_TYPE_Q6_K = 14,
    KQ_TYPE_IQ4_NL = 20, KQ_TYPE_IQ4_XS = 23
};

/* Element formats of the rows given to kq_quantize. */
enum kq_src { KQ_SRC_F32 = 0, KQ_SRC_F16 = 1, KQ_SRC_BF16 = 2 };

/* Results: bytes written (>= 0) or one of these. */
enum kq_status {
    KQ_ERR_TYPE = -1,           /* type is not one of enum kq_type */
    KQ_ERR_ROW_LENGTH = -2,     /* n_per_row is not a positive multiple of the type's block size */
    KQ_ERR_NONFINITE = -3,      /* a NaN or Inf in a row; *bad_row says which */
    KQ_ERR_ARGS = -4,           /* NULL pointer, negative row count or unknown source format */
    KQ_ERR_DST_SIZE = -5,       /* dst (or src for dequantize) is smaller than the rows need */
    KQ_ERR_NOMEM = -6,          /* the per-call scratch row could not be allocated */
    KQ_ERR_IMATRIX = -7,        /* a NaN or Inf in the importance matrix */
    KQ_ERR_ISA_UNKNOWN = -8,    /* QUANTDESK_ISA is set to something other than scalar|avx2|neon */
    KQ_ERR_ISA_UNAVAILABLE = -9 /* QUANTDESK_ISA names an ISA this CPU or build cannot run */
};

/* The ISA in use (an enum kq_isa), or KQ_ERR_ISA_UNKNOWN / KQ_ERR_ISA_UNAVAILABLE.
 * kq_set_isa's choice, if it made one; otherwise the environment variable QUANTDESK_ISA, read
 * on first use: unset or empty means the best ISA this CPU and build have; "scalar", "avx2" or
 * "neon" (exactly, lowercase) forces that ISA. Any other value, or an ISA this CPU or build
 * cannot run, is an error rather than a silent fallback: kq_active_isa and every kq_quantize
 * call return it (kq_quantize writing nothing) until the variable is fixed or kq_set_isa
 * chooses. A valid choice is kept for the life of the process. kq_dequantize does not depend
 * on the ISA and ignores the variable. */
int kq_active_isa(void);
/* Force an ISA (tests), over QUANTDESK_ISA. Returns 0, or -1 when this CPU or build cannot run it. */
int kq_set_isa(int isa);
/* 1 if this CPU and build can run the ISA, else 0. */
int kq_isa_available(int isa);

/* Block geometry of a type: returns 0 and fills the pointers, or KQ_ERR_TYPE. */
int kq_type_info(int type, int *block_size, int *block_bytes);
/* Bytes of one quantized row of n_per_row weights, or a negative kq_status. */
int64_t kq_row_size(int type, int64_t n_per_row);

/* Quantize nrows rows of n_per_row values (float32, float16 or bfloat16 per src_format) into dst
 * (dst_size bytes available). imatrix: NULL or n_per_row importance weights, one per column.
 * Returns bytes written, or a negative kq_status; on KQ_ERR_NONFINITE, *bad_row (if not NULL)
 * holds the index of the first offending row and the rows before it are already written. */
int64_t kq_quantize(int type, int src_format, const void *src, int64_t nrows, int64_t n_per_row,
                    const float *imatrix, void *dst, int64_t dst_size, int64_t *bad_row);

/* Dequantize nrows rows (src_size bytes available) into float32 dst. Returns the number of
 * floats written, or a negative kq_status. */
int64_t kq_dequantize(int type, const void *src, int64_t src_size, float *dst, int64_t nrows,
                      int64_t n_per_row);
#endif
