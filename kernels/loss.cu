// Loss head (docs/model.md#loss-head): stablemax or softmax cross entropy in
// float64 with its gradient, predictions, counts, and the q-head BCE terms.
#include "common.cuh"

#define IGNORE_LABEL (-100)
#define LOSS_THREADS 128

__device__ __forceinline__ double sigmoid_d(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

// bce_d: binary cross entropy with logits, max(x,0) - x t + log1p(exp(-|x|)).
__device__ __forceinline__ double bce_d(float x32, double t) {
    double x = (double)x32;
    return fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
}

// stablemax_ce returns -log(s(x_y) / sum_j s(x_j)), s(t) = 1/(1-t) for t < 0
// and t + 1 otherwise, and writes scale times its gradient into g.
__device__ double stablemax_ce(const float *x, int y, i64 V, float *g, double scale) {
    double sum = 0.0, sy = 0.0;
    for (i64 i = 0; i < V; i++) {
        double t = (double)x[i];
        double s = t < 0 ? 1.0 / (1.0 - t) : t + 1.0;
        sum += s;
        if (i == y) sy = s;
    }
    if (g) {
        for (i64 i = 0; i < V; i++) {
            double t = (double)x[i];
            double ds = t < 0 ? 1.0 / ((1.0 - t) * (1.0 - t)) : 1.0;
            double gi = ds / sum;
            if (i == y) gi -= ds / sy;
            g[i] = (float)(scale * gi);
        }
    }
    return -log(sy / sum);
}

// softmax_ce is the ordinary softmax cross entropy in float64.
__device__ double softmax_ce(const float *x, int y, i64 V, float *g, double scale) {
    double m = -INFINITY;
    for (i64 i = 0; i < V; i++) m = fmax(m, (double)x[i]);
    double sum = 0.0;
    for (i64 i = 0; i < V; i++) sum += exp((double)x[i] - m);
    if (g) {
        for (i64 i = 0; i < V; i++) {
            double gi = exp((double)x[i] - m) / sum;
            if (i == y) gi -= 1.0;
            g[i] = (float)(scale * gi);
        }
    }
    return m + log(sum) - (double)x[y];
}

// trm_loss_head: one block of LOSS_THREADS threads per example; a thread
// per position (V is small: the logits row is walked serially in float64,
// as the reference does). The per-position losses of each chunk of
// positions meet in shared memory and thread 0 adds them in position
// order, the CPU reference's order, so the sum is deterministic.
// nextQ, dlogits and dq may be null.
// FLOPs ~6 V per position (plus V exponentials for softmax);
// bytes 8 V per position (logits in, gradient out) + 8 per position.
TRM_KERNEL void __launch_bounds__(LOSS_THREADS)
    trm_loss_head(const float *__restrict__ logits, const int *__restrict__ labels, const float *__restrict__ q,
                  const float *__restrict__ nextQ, const int *__restrict__ steps, float *__restrict__ dlogits,
                  float *__restrict__ dq, int *__restrict__ preds, double *__restrict__ lmLoss,
                  double *__restrict__ qHaltLoss, double *__restrict__ qContLoss, float *__restrict__ qTarget,
                  int *__restrict__ nValid, int *__restrict__ nCorrect, int *__restrict__ seqCorrect, i64 B, i64 L, i64 V,
                  i64 softmax, i64 haltMaxSteps, double gradScale, int *err) {
    __shared__ double part[LOSS_THREADS];
    __shared__ int counts[2];
    const i64 r = blockIdx.x;
    if (r >= B) return;
    const int tid = threadIdx.x;
    if (tid == 0) counts[0] = counts[1] = 0;
    __syncthreads();
    int nloc = 0;
    for (i64 p = tid; p < L; p += blockDim.x) {
        int y = labels[r * L + p];
        if (y != IGNORE_LABEL) {
            nloc++;
            if (y < 0 || y >= V) report(err, TRM_ERR_LOSS_LABEL, (int)r, (int)p, y, (int)V);
        }
    }
    atomicAdd(&counts[0], nloc); // integer sum: the same result in any order
    __syncthreads();
    const int n = counts[0];
    const double div = (double)(n > 1 ? n : 1);
    const double scale = gradScale / div;
    int correct = 0;
    double loss = 0.0;
    for (i64 base = 0; base < L; base += blockDim.x) {
        i64 p = base + tid;
        double lp = 0.0;
        if (p < L) {
            const float *x = logits + (r * L + p) * V;
            i64 best = 0;
            for (i64 i = 1; i < V; i++)
                if (x[i] > x[best]) best = i;
            preds[r * L + p] = (int)best;
            int y = labels[r * L + p];
            float *g = dlogits ? dlogits + (r * L + p) * V : 0;
            if (y == IGNORE_LABEL || y < 0 || y >= V) {
                if (g)
                    for (i64 i = 0; i < V; i++) g[i] = 0.0f;
            } else {
                if (best == y) correct++;
                double ce = softmax ? softmax_ce(x, y, V, g, scale) : stablemax_ce(x, y, V, g, scale);
                lp = ce / div;
            }
        }
        part[tid] = lp;
        __syncthreads();
        if (tid == 0)
            for (int k = 0; k < blockDim.x; k++) loss += part[k];
        __syncthreads();
    }
    atomicAdd(&counts[1], correct);
    __syncthreads();
    if (tid != 0) return;
    const int nc = counts[1];
    lmLoss[r] = loss;
    nValid[r] = n;
    nCorrect[r] = nc;
    const bool seq = nc == n;
    seqCorrect[r] = seq ? 1 : 0;
    const double t = seq ? 1.0 : 0.0;
    qHaltLoss[r] = bce_d(q[2 * r], t);
    qContLoss[r] = 0.0;
    qTarget[r] = 0.0f;
    if (dq) {
        dq[2 * r] = (float)(gradScale * 0.5 * (sigmoid_d((double)q[2 * r]) - t));
        dq[2 * r + 1] = 0.0f;
    }
    if (nextQ) {
        // target_q_continue = sigmoid(is_last ? next_halt : max(next_halt, next_continue))
        double next = (double)nextQ[2 * r];
        if (steps[r] < haltMaxSteps) next = fmax(next, (double)nextQ[2 * r + 1]);
        double target = (double)(float)sigmoid_d(next);
        qTarget[r] = (float)target;
        qContLoss[r] = bce_d(q[2 * r + 1], target);
        if (dq) dq[2 * r + 1] = (float)(gradScale * 0.5 * (sigmoid_d((double)q[2 * r + 1]) - target));
    }
}
