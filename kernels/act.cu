// ACT carry bookkeeping (docs/model.md#the-act-step-and-the-carry): reset of
// halted slots, halting.
#include "common.cuh"

// trm_act_reset: for every halted slot r, z_H and z_L rows take hInit and
// lInit, steps[r] = 0, and the current example takes the batch's. One
// thread per element of the largest section; each section is guarded.
// FLOPs 0; bytes up to 16 S H + 16 L per halted slot.
TRM_KERNEL void trm_act_reset(float *__restrict__ zH, float *__restrict__ zL, int *__restrict__ steps,
                              const int *__restrict__ halted, int *__restrict__ curInputs, int *__restrict__ curLabels,
                              int *__restrict__ curPIDs, const int *__restrict__ inputs, const int *__restrict__ labels,
                              const int *__restrict__ pids, const float *__restrict__ hInit,
                              const float *__restrict__ lInit, i64 batch, i64 seqTotal, i64 seqLen, i64 hidden) {
    i64 rowZ = seqTotal * hidden;
    i64 nz = batch * rowZ, ns = batch * seqLen;
    for (i64 e = gs_start(); e < nz; e += gs_step()) {
        i64 r = e / rowZ;
        if (halted[r] == 0) continue;
        i64 c = e % hidden;
        zH[e] = hInit[c];
        zL[e] = lInit[c];
    }
    for (i64 e = gs_start(); e < ns; e += gs_step()) {
        i64 r = e / seqLen;
        if (halted[r] == 0) continue;
        curInputs[e] = inputs[e];
        curLabels[e] = labels[e];
    }
    for (i64 r = gs_start(); r < batch; r += gs_step()) {
        if (halted[r] == 0) continue;
        steps[r] = 0;
        curPIDs[r] = pids[r];
    }
}

// trm_act_halt: steps += 1; halted = steps >= maxSteps, or, training with
// maxSteps > 1, (q_halt > 0 without the continue head, else q_halt >
// q_continue) and steps >= minSteps. One thread per slot.
// FLOPs ~3 per slot; bytes 20 per slot.
TRM_KERNEL void trm_act_halt(int *__restrict__ steps, int *__restrict__ halted, const float *__restrict__ q,
                             const int *__restrict__ minSteps, i64 batch, i64 maxSteps, i64 training,
                             i64 noACTContinue) {
    for (i64 r = gs_start(); r < batch; r += gs_step()) {
        int st = steps[r] + 1;
        steps[r] = st;
        bool h = st >= maxSteps;
        if (training && maxSteps > 1) {
            if (noACTContinue) h = h || q[2 * r] > 0.0f;
            else h = h || q[2 * r] > q[2 * r + 1];
            h = h && st >= minSteps[r];
        }
        halted[r] = h ? 1 : 0;
    }
}
