/*
 * sinkhorn4j C ABI: coarse-grained calls, one whole solve per call.
 *
 * Every function returns an sk_status; on failure sk_last_error() gives a readable message
 * (thread-local, valid until the next call on the same thread). All pointers are host memory.
 * Clouds are row-major; a batch is a list of independent problems stored back to back, delimited
 * by row offsets.
 */
#ifndef SINKHORN4J_H
#define SINKHORN4J_H

#include <stdint.h>

#if defined(__GNUC__)
#define SK_API __attribute__((visibility("default")))
#else
#define SK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum sk_status {
  SK_OK = 0,
  SK_INVALID_ARGUMENT = 1,
  SK_OUT_OF_MEMORY = 2,
  SK_DEVICE_ERROR = 3,
  SK_NO_DEVICE = 4,
  SK_INTERNAL_ERROR = 5,
  SK_NOT_CONVERGED = 6       /* an iterative solve missed its tolerance (sk_hvp's CG) */
};

enum sk_dtype { SK_FLOAT32 = 0, SK_FLOAT64 = 1 };
enum sk_device { SK_DEVICE_AUTO = 0, SK_DEVICE_CPU = 1, SK_DEVICE_CUDA = 2 };
enum sk_solver { SK_SOLVER_SYMMETRIC = 0, SK_SOLVER_ALTERNATING = 1 };
/*
 * CUDA graphs for the iterations at the final eps (CUDA backend): AUTO replays them as graphs on
 * small problems, where launch costs dominate, and falls back to direct launches if a recording
 * fails; OFF always launches directly; ON replays them at every size and fails with SK_DEVICE_ERROR
 * when a recording fails. Results are bitwise the same in every mode.
 */
enum sk_cuda_graphs { SK_CUDA_GRAPHS_AUTO = 0, SK_CUDA_GRAPHS_OFF = 1, SK_CUDA_GRAPHS_ON = 2 };
/* Where the coordinates x and y of sk_clouds live (the other arrays are always host memory). */
enum sk_memory { SK_MEMORY_HOST = 0, SK_MEMORY_CUDA = 1 };

typedef struct sk_options {
  double blur;               /* target scale: the last eps of the schedule is blur^2 */
  double scaling;            /* eps-scaling ratio in (0, 1) */
  double reach_x;            /* relaxation of the marginal on x (weights a); <= 0: balanced */
  double reach_y;            /* relaxation of the marginal on y (weights b); <= 0: balanced */
  double diameter;           /* <= 0: estimated from the clouds as GeomLoss does */
  double eps;                /* > 0: fixed eps for n_iters iterations instead of a schedule */
  const double* eps_list;    /* explicit schedule (overrides blur/scaling/eps) or NULL */
  int32_t eps_list_length;
  int32_t n_iters;           /* iterations at fixed eps */
  double threshold;          /* > 0: stop once the largest potential change is below it */
  int32_t inner_iterations;  /* check the threshold every inner_iterations iterations */
  int32_t debias;
  int32_t half_cost;         /* C = |x-y|^2/2 when set, |x-y|^2 otherwise */
  int32_t solver;            /* sk_solver */
  int32_t last_extrapolation;
  int32_t geomloss_gradients; /* weight relaxed sides by rho + eps/2 as GeomLoss's autograd does */
  int32_t device;            /* sk_device */
  int32_t allow_tf32;        /* CUDA float32: tensor-core TF32 dot products */
  int32_t cuda_graphs;       /* sk_cuda_graphs */
} sk_options;

typedef struct sk_clouds {
  int32_t dtype;             /* sk_dtype of every array below */
  int64_t batch;             /* number of independent problems, >= 1 */
  const int64_t* x_offsets;  /* batch + 1 row offsets into x, or NULL when batch == 1 */
  const int64_t* y_offsets;  /* batch + 1 row offsets into y, or NULL when batch == 1 */
  int64_t n, m, d;           /* total rows of x and y, and the dimension */
  const void* x;             /* n x d */
  const void* y;             /* m x d */
  const void* a;             /* n weights, or NULL for uniform weights per problem */
  const void* b;             /* m weights, or NULL */
  int32_t memory;            /* sk_memory of x and y; SK_MEMORY_CUDA (sk_divergence only): device
                                pointers of the current CUDA device, read there (no upload) */
} sk_clouds;

typedef struct sk_outputs {
  double* loss;              /* batch values (required) */
  int32_t* iterations;       /* batch values or NULL */
  int32_t* converged;        /* batch values or NULL */
  double* max_change;        /* batch values or NULL: largest potential change at the last check */
  int32_t* device_used;      /* one sk_device or NULL */
  void* f_ba;                /* n, or NULL: the potentials of the (x, y) problem and the self terms */
  void* g_ab;                /* m */
  void* f_aa;                /* n */
  void* g_bb;                /* m */
  void* grad_x;              /* n x d, or NULL */
  void* grad_y;              /* m x d */
  void* grad_a;              /* n */
  void* grad_b;              /* m */
} sk_outputs;

/* The (debiased, (semi-)unbalanced) Sinkhorn divergence of every problem of the batch. */
SK_API int32_t sk_divergence(const sk_options* options, const sk_clouds* clouds, sk_outputs* outputs);

/*
 * Transport-plan products from potentials f (n) and g (m), with
 * pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), eps = options->eps:
 * transpose == 0: out (n x k) = pi @ v, v is m x k;  transpose != 0: out (m x k) = pi^T @ v, v is n x k.
 */
SK_API int32_t sk_plan_product(const sk_options* options, const sk_clouds* clouds, const void* f, const void* g,
                        int32_t transpose, int64_t k, const void* v, void* out);

enum sk_wrt { SK_WRT_X = 0, SK_WRT_Y = 1 };

typedef struct sk_hvp_options {
  double cg_tol;             /* relative CG residual |A u - rhs| <= cg_tol |rhs|; <= 0: 1e-10 (float64), 1e-5 (float32) */
  int32_t cg_max_iters;      /* per CG solve; <= 0: 1000 */
  double regularization;     /* Tikhonov weight on the balanced gauge, relative to the diagonal;
                                < 0: 1e-10 (float64), 1e-5 (float32: 100x the rounding of its plan products) */
  int32_t wrt;               /* sk_wrt: the cloud the Hessian is taken with respect to */
  int32_t allow_unconverged; /* 0: a CG that misses cg_tol fails with SK_NOT_CONVERGED (out and report still
                                written); else it is only reported */
  int32_t allow_tf32;        /* CUDA float32: TF32-class products in the HVP's passes (options->allow_tf32 is
                                not used: their rounding, ~1e-3, is far above CG's tolerance) */
  int64_t max_plan_entries;  /* per CG solve, the plan's support (entries p_ij >= 1e-15 of their row's softmax)
                                is kept and CG's products read it when it has at most this many entries
                                (12 bytes each); < 0: 64 (n + m); 0: every CG product streams the clouds */
} sk_hvp_options;

typedef struct sk_hvp_report {
  int32_t cg_iterations;     /* over both CG solves (the cross term's and, debiased, the self term's) */
  int32_t converged;
  double cg_residual;        /* the larger final true relative residual */
  int32_t device_used;       /* sk_device */
  int64_t plan_entries;      /* entries of the plan supports CG's products read (0: streamed products) */
} sk_hvp_report;

/*
 * Hessian-vector product of the loss with respect to x (or y), out = H v, at the potentials of a
 * solve (f_ba, g_ab, and f_aa or g_bb when debiased) and the final eps of options (last of eps_list,
 * else eps, else blur^2). v and out are n x d (m x d for y). One problem (batch == 1). The Hessian is
 * that of the exact loss (geomloss_gradients does not apply).
 */
SK_API int32_t sk_hvp(const sk_options* options, const sk_clouds* clouds, const void* f_ba, const void* g_ab,
                      const void* f_aa, const void* g_bb, const sk_hvp_options* hvp_options, const void* v,
                      void* out, sk_hvp_report* report);

SK_API const char* sk_last_error(void);

/* Number of CUDA devices usable by this library (0 without a driver, a device or CUDA support). */
SK_API int32_t sk_cuda_device_count(void);

/*
 * Device memory. Solves keep their streams, device memory and workspaces in a process-wide cache
 * for the next call. held: bytes the library holds on all devices (in use and cached); peak: its
 * high-water mark since the last sk_cuda_reset_peak_memory; limit: the cap set by
 * sk_cuda_set_memory_limit (0: none), past which an allocation fails with SK_OUT_OF_MEMORY. All
 * zero without CUDA support.
 */
typedef struct sk_cuda_memory {
  int64_t held;
  int64_t peak;
  int64_t limit;
} sk_cuda_memory;

SK_API int32_t sk_cuda_memory_usage(sk_cuda_memory* out);
SK_API int32_t sk_cuda_reset_peak_memory(void);
SK_API int32_t sk_cuda_set_memory_limit(int64_t bytes);   /* bytes >= 0; 0 removes the cap */
SK_API int32_t sk_cuda_release_cached_memory(void);       /* frees what no running solve uses */

/*
 * Caller-owned device arrays, for clouds that stay on the GPU across calls (sk_memory CUDA):
 * sk_cuda_upload copies bytes of host memory into a new allocation on the current CUDA device and
 * stores its address in *device; sk_cuda_free releases one (NULL: nothing). They are not part of the
 * cache above nor of its limit.
 */
SK_API int32_t sk_cuda_upload(const void* host, int64_t bytes, void** device);
SK_API int32_t sk_cuda_free(void* device);

/*
 * Dense cost-matrix solver: batched entropic OT on explicit costs C (batch x n x m, row-major),
 * with masks for variable lengths. Log-domain alternating updates (docs/math.md, "Dense costs"):
 *   f_i = -eps damp_a LSE_j(log b_j + (g_j - C_ij)/eps),  g_j = -eps damp_b LSE_i(log a_i + (f_i - C_ij)/eps),
 * damp = tau / (tau + eps) on a relaxed side (tau = rho = reach^2 of sk_options), 1 when balanced.
 * Masked entries take no part: their potentials are 0, their entries of C, a and b are not read.
 */
typedef struct sk_dense_options {
  double eps;                /* > 0 */
  double tau_a;              /* KL strength of the marginal of a (rows); <= 0 or +inf: balanced */
  double tau_b;              /* the same for b (columns) */
  double threshold;          /* > 0: an item stops once its largest potential change is below it; 0: max_iters */
  int32_t max_iters;         /* >= 1 */
  int32_t check_every;       /* >= 1: iterations between two threshold checks */
  int32_t device;            /* sk_device */
} sk_dense_options;

typedef struct sk_dense_inputs {
  int32_t dtype;             /* sk_dtype of c, a, b (and of every output but cost) */
  int64_t batch, n, m;       /* >= 1 each; an (n, m) problem is batch 1 */
  const void* c;             /* batch x n x m costs, finite where both sides are unmasked */
  const void* a;             /* batch x n weights, or NULL: uniform over the unmasked rows of each item */
  const void* b;             /* batch x m weights, or NULL */
  const uint8_t* mask_a;     /* batch x n, nonzero = present, or NULL: all present */
  const uint8_t* mask_b;     /* batch x m, or NULL */
  int32_t memory;            /* sk_memory of c; SK_MEMORY_CUDA: a device pointer of the current CUDA device,
                                solved there (device auto or cuda) without an upload */
} sk_dense_inputs;

typedef struct sk_dense_outputs {
  double* cost;              /* batch values (required): the dual value F(f, g), docs/math.md */
  int32_t* iterations;       /* batch values or NULL */
  int32_t* converged;        /* batch values or NULL: the threshold was reached */
  int32_t* device_used;      /* one sk_device or NULL */
  double* solve_ms;          /* one value or NULL: wall time of the iterations alone (no transfers, checks or outputs) */
  void* f;                   /* batch x n or NULL (0 where masked) */
  void* g;                   /* batch x m or NULL */
  void* plan;                /* batch x n x m or NULL: P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps) = dcost/dC_ij */
  void* grad_a;              /* batch x n or NULL: dcost/da */
  void* grad_b;              /* batch x m or NULL: dcost/db */
} sk_dense_outputs;

/* Solves every item of the batch; writes the outputs asked for. */
SK_API int32_t sk_dense_sinkhorn(const sk_dense_options* options, const sk_dense_inputs* inputs,
                                 sk_dense_outputs* outputs);

/*
 * Plan products from potentials f (batch x n) and g (batch x m) at options->eps, per item:
 * transpose == 0: out (batch x n x k) = P @ v, v is batch x m x k;  transpose != 0: out (batch x m x k) = P^T @ v,
 * v is batch x n x k. Rows of out at masked entries are 0.
 */
SK_API int32_t sk_dense_plan_product(const sk_dense_options* options, const sk_dense_inputs* inputs, const void* f,
                                     const void* g, int32_t transpose, int64_t k, const void* v, void* out);

#ifdef __cplusplus
}
#endif

#endif
