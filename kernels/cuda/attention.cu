// MDTA core on the GPU, the function of kernels/cpu/attention.cpp. Per image b and head h, with
// c = C/heads rows of N = H*W pixels:
//   nq_i = max(|q_i|, eps), nk_j likewise;  G = q k^T;  S_ij = G_ij / (nq_i nk_j)  (= qn kn^T);
//   A = softmax_rows(S * temperature[h]);   out = A v.
// The long reductions over N are the row norms (deterministic split reduction) and the c x c
// products (cuBLAS strided-batched SGEMMs over all (image, head) pairs, see gemm_bh). qn, kn are
// never materialised: backward folds the normalisation into c x c matrices (attention_backward).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

constexpr float kNormEps = 1e-12f;  // F.normalize's eps

// norms[b*2C + j] = max(|qkv[b, j, :]|, eps) for the 2C q and k rows of each image.
struct SquareTerm {
    const float* qkv;
    int64_t C, N;
    __device__ float operator()(int64_t row, int64_t k) const {
        int64_t b = row / (2 * C), j = row - b * 2 * C;
        float v = qkv[(b * 3 * C + j) * N + k];
        return v * v;
    }
};
struct NormFinish {
    float* norms;
    __device__ void operator()(int64_t row, float s) const { norms[row] = fmaxf(sqrtf(s), kNormEps); }
};

void row_norms(const float* qkv, float* norms, int64_t B, int64_t C, int64_t N) {
    split_reduce<float>(B * 2 * C, N, SquareTerm{qkv, C, N}, NormFinish{norms}, "attention row norms");
}

// A matrix operand of one (image, head) pair: row-major with leading dimension ld, at
// p + b * image + h * head.
struct Operand {
    const float* p;
    int64_t ld, image, head;
};

// C_bh = op(A_bh) op(B_bh) + beta C_bh for every image b < B and head h < heads. Neither stride is
// a multiple of the other (heads are c*N apart within an image, images 3C*N apart), so one
// strided-batched call covers one index: batch the larger (the B sub-images in training, or the
// heads of one large image) and loop over the smaller, so few, large calls fill the GPU.
void gemm_bh(bool ta, bool tb, int64_t M, int64_t N, int64_t K, Operand a, Operand b, float beta, float* C,
             int64_t ldc, int64_t c_image, int64_t c_head, int64_t B, int heads) {
    if (B >= heads) {
        for (int64_t h = 0; h < heads; ++h)
            sgemm_rm(ta, tb, M, N, K, 1.f, a.p + h * a.head, a.ld, a.image, b.p + h * b.head, b.ld, b.image, beta,
                     C + h * c_head, ldc, c_image, B);
    } else {
        for (int64_t i = 0; i < B; ++i)
            sgemm_rm(ta, tb, M, N, K, 1.f, a.p + i * a.image, a.ld, a.head, b.p + i * b.image, b.ld, b.head, beta,
                     C + i * c_image, ldc, c_head, heads);
    }
}

// The operands of one qkv part (0 q, 1 k, 2 v) or of a (B, C, N) tensor; and of (B, heads, c, c).
Operand part(const float* qkv, int which, int64_t C, int64_t N, int64_t c) {
    return {qkv + which * C * N, N, 3 * C * N, c * N};
}
Operand rows(const float* x, int64_t C, int64_t N, int64_t c) { return {x, N, C * N, c * N}; }
Operand small(const float* x, int64_t c, int heads) { return {x, c, heads * c * c, c * c}; }

// G_b = q_b k_b^T for every head of every image: (B, heads, c, c).
void gram(const float* qkv, float* G, int64_t B, int64_t C, int64_t N, int heads) {
    const int64_t c = C / heads;
    gemm_bh(false, true, c, c, N, part(qkv, 0, C, N, c), part(qkv, 1, C, N, c), 0.f, G, c, heads * c * c, c * c, B,
            heads);
}

// In place, one warp per row (b, h, i), its lanes over j (rows are c = C/heads long, 48 in the
// default model: a thread per row read them down a column, 48 strided loads each):
//   A_ij = softmax_j(G_ij / (nq_i nk_j) * temperature[h]).
__global__ void softmax_kernel(float* A, const float* norms, const float* temperature, int64_t B, int64_t C, int64_t c,
                               int heads) {
    const int lane = threadIdx.x & 31;
    const int64_t rows = B * heads * c, per_block = blockDim.x >> 5, stride = (int64_t)gridDim.x * per_block;
    for (int64_t r = blockIdx.x * per_block + (threadIdx.x >> 5); r < rows; r += stride) {  // uniform per warp
        const int64_t bh = r / c, i = r - bh * c, h = bh % heads, b = bh / heads;
        const float nq = norms[b * 2 * C + h * c + i];
        const float* nk = norms + b * 2 * C + C + h * c;
        const float t = temperature[h];
        float* row = A + r * c;
        float mx = -INFINITY;
        for (int64_t j = lane; j < c; j += 32) {
            const float s = row[j] / (nq * nk[j]) * t;
            row[j] = s;
            mx = fmaxf(mx, s);
        }
        mx = warp_allmax(mx);
        float sum = 0.f;
        for (int64_t j = lane; j < c; j += 32) sum += (row[j] = expf(row[j] - mx));
        const float inv = 1.f / warp_allsum(sum);
        for (int64_t j = lane; j < c; j += 32) row[j] *= inv;
    }
}

// One block per (b, h), a warp per row i (lanes over j), from dA = dout v^T, A and G:
//   dL = A * (dA - rowsum(dA * A))            softmax backward
//   tpart[b*heads+h] = sum dL * S             this image's share of d temperature[h]
//   dS = temperature[h] * dL;  M_ij = dS_ij / (nq_i nk_j)
//   coef_q_i = -sum_j dS_ij S_ij / nq_i^2,  coef_k_j = -sum_i dS_ij S_ij / nk_j^2  (0 when clamped)
// so that dq = M k + coef_q q and dk = M^T q + coef_k k: the normalisation backward
// (g - qn <g, qn>) / nq without forming qn, since <(dS kn)_i, qn_i> = sum_j dS_ij S_ij.
// dA is overwritten with dS * S for the column sums (a thread per column j: each row's reads are
// consecutive across threads).
__global__ void attention_grad_small_kernel(const float* A, float* dA, const float* G, const float* norms,
                                            const float* temperature, float* M, float* coef, float* tpart, int64_t C,
                                            int64_t c, int heads) {
    const int64_t bh = blockIdx.x, h = bh % heads, b = bh / heads;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const float t = temperature[h];
    const float* nq = norms + b * 2 * C + h * c;
    const float* nk = norms + b * 2 * C + C + h * c;
    float* cq = coef + b * 2 * C + h * c;
    float* ck = coef + b * 2 * C + C + h * c;
    const int64_t off = bh * c * c;
    float tsum = 0.f;
    for (int64_t i = warp; i < c; i += nwarps) {  // uniform per warp
        const float* a = A + off + i * c;
        float* d = dA + off + i * c;
        const float* g = G + off + i * c;
        float* m = M + off + i * c;
        float s = 0.f;
        for (int64_t j = lane; j < c; j += 32) s += d[j] * a[j];
        s = warp_allsum(s);
        float p = 0.f;
        for (int64_t j = lane; j < c; j += 32) {
            const float dl = a[j] * (d[j] - s);
            const float S = g[j] / (nq[i] * nk[j]);
            const float ds = dl * t;
            tsum += dl * S;
            p += ds * S;
            m[j] = ds / (nq[i] * nk[j]);
            d[j] = ds * S;
        }
        p = warp_allsum(p);
        if (lane == 0) cq[i] = nq[i] <= kNormEps ? 0.f : -p / (nq[i] * nq[i]);
    }
    tsum = block_sum(tsum);  // also a barrier: the d[j] = dS*S writes above are visible below
    if (threadIdx.x == 0) tpart[bh] = tsum;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
        float p = 0.f;
        for (int64_t i = 0; i < c; ++i) p += dA[off + i * c + j];
        ck[j] = nk[j] <= kNormEps ? 0.f : -p / (nk[j] * nk[j]);
    }
}

// dtemperature[h] += sum over images of tpart[b*heads + h], in image order.
__global__ void temperature_finish_kernel(const float* tpart, float* dtemperature, int64_t B, int heads) {
    AMS_GRID_STRIDE(h, heads) {
        float s = 0.f;
        for (int64_t b = 0; b < B; ++b) s += tpart[b * heads + h];
        dtemperature[h] += s;
    }
}

// dq / dk rows += coef[row] * q / k rows (the diagonal part of the normalisation backward).
template <class I>  // the index type (common.cuh, with_index_type)
__global__ void diag_kernel(const float* qkv, const float* coef, float* dqkv, I B, I C, I N) {
    AMS_GRID_STRIDE_AS(I, idx, B * 2 * C * N) {
        I row = idx / N, k = idx - row * N, b = row / (2 * C), j = row - b * 2 * C;
        I at = (b * 3 * C + j) * N + k;
        dqkv[at] += coef[row] * qkv[at];
    }
}

}  // namespace

void attention_forward(const float* qkv, const float* temperature, float* out, float* attn, int64_t B, int64_t C,
                       int64_t N, int heads) {
    const int64_t c = C / heads;
    if (B == 0 || C == 0) return;
    if (N == 0) {  // empty images: zero rows give a uniform softmax (as on the CPU) and no output;
        fill(attn, B * heads * c * c, 1.0f / (float)c);  // cuBLAS refuses a leading dimension of 0
        return;
    }
    DeviceBuffer norms((size_t)(B * 2 * C) * sizeof(float));
    row_norms(qkv, norms.as<float>(), B, C, N);
    gram(qkv, attn, B, C, N, heads);  // attn holds G until the softmax replaces it
    softmax_kernel<<<grid_for(B * heads * c * 32), kThreads, 0, stream()>>>(attn, norms.as<float>(), temperature, B, C, c,
                                                                       heads);
    AMS_CUDA_LAUNCH_CHECK("attention softmax");
    // out = A v
    gemm_bh(false, false, c, N, c, small(attn, c, heads), part(qkv, 2, C, N, c), 0.f, out, N, C * N, c * N, B, heads);
}

void attention_backward(const float* qkv, const float* temperature, const float* attn, const float* dout, float* dqkv,
                        float* dtemperature, int64_t B, int64_t C, int64_t N, int heads) {
    const int64_t c = C / heads, cc = B * heads * c * c;
    if (B == 0 || C == 0 || N == 0 || (!dqkv && !dtemperature)) return;  // N == 0: every gradient is 0
    DeviceBuffer norms((size_t)(B * 2 * C) * sizeof(float)), coef((size_t)(B * 2 * C) * sizeof(float));
    DeviceBuffer G((size_t)cc * sizeof(float)), dA((size_t)cc * sizeof(float)), M((size_t)cc * sizeof(float));
    DeviceBuffer tpart((size_t)(B * heads) * sizeof(float));
    // dA = dout v^T;  dv += A^T dout
    gemm_bh(false, true, c, c, N, rows(dout, C, N, c), part(qkv, 2, C, N, c), 0.f, dA.as<float>(), c, heads * c * c,
            c * c, B, heads);
    if (dqkv)
        gemm_bh(true, false, c, N, c, small(attn, c, heads), rows(dout, C, N, c), 1.f, dqkv + 2 * C * N, N, 3 * C * N,
                c * N, B, heads);
    row_norms(qkv, norms.as<float>(), B, C, N);
    gram(qkv, G.as<float>(), B, C, N, heads);
    attention_grad_small_kernel<<<(unsigned)(B * heads), kThreads, 0, stream()>>>(
        attn, dA.as<float>(), G.as<float>(), norms.as<float>(), temperature, M.as<float>(), coef.as<float>(),
        tpart.as<float>(), C, c, heads);
    AMS_CUDA_LAUNCH_CHECK("attention softmax backward");
    if (dtemperature) {
        temperature_finish_kernel<<<grid_for(heads), kThreads, 0, stream()>>>(tpart.as<float>(), dtemperature, B, heads);
        AMS_CUDA_LAUNCH_CHECK("attention temperature gradient");
    }
    if (!dqkv) return;
    // dq += M k;  dk += M^T q
    gemm_bh(false, false, c, N, c, small(M.as<float>(), c, heads), part(qkv, 1, C, N, c), 1.f, dqkv, N, 3 * C * N,
            c * N, B, heads);
    gemm_bh(true, false, c, N, c, small(M.as<float>(), c, heads), part(qkv, 0, C, N, c), 1.f, dqkv + C * N, N,
            3 * C * N, c * N, B, heads);
    with_index_type(B * 3 * C * N, [&](auto t) {
        using I = decltype(t);
        diag_kernel<I><<<grid_for(B * 2 * C * N), kThreads, 0, stream()>>>(qkv, coef.as<float>(), dqkv, (I)B, (I)C,
                                                                           (I)N);
    });
    AMS_CUDA_LAUNCH_CHECK("attention normalisation backward");
}

}  // namespace ams::cuda
