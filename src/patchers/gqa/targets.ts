/**
 * @file What each execution provider's GroupQueryAttention kernel accepts (shared/reference/algorithms.md §4.2),
 * so the gqa patch emits a form that runs where the model will run. transformers.js 4 runs `device: 'webgpu'`
 * on onnxruntime-web's native WebGPU EP; 'webgpu-jsep' is the older JS kernels of the default onnxruntime-web
 * bundle.
 */

export type GqaTarget = 'cpu' | 'wasm' | 'webgpu' | 'webgpu-jsep' | 'cuda';

export interface GqaCapabilities {
  /** Built-in rotary with interleaved pairs. */
  interleavedRotary: boolean;
  /** local_window_size ≥ 0. */
  localWindow: boolean;
  /** softcap > 0. */
  softcap: boolean;
  /** Float element types the kernel takes. */
  dtypes: readonly ('float32' | 'float16')[];
  /** A measured caveat the patch report repeats as a warning. */
  caveat?: string;
}

export const GQA_TARGETS: Readonly<Record<GqaTarget, GqaCapabilities>> = Object.freeze({
  cpu: { interleavedRotary: true, localWindow: true, softcap: true, dtypes: ['float32', 'float16'] },
  wasm: {
    interleavedRotary: true,
    localWindow: true,
    softcap: true,
    dtypes: ['float32', 'float16'],
    // bench/gqa.ts: bench-llama-random, onnxruntime-web 1.30 wasm, 1 thread.
    caveat: "onnxruntime-web's wasm GroupQueryAttention prefill is 2.5–4.8× slower than the unfused graph at 512–2048 tokens (decode is on par); feed long prompts in chunks of ~256 tokens (prefillChunk) or keep the unfused graph on wasm",
  },
  webgpu: { interleavedRotary: true, localWindow: true, softcap: true, dtypes: ['float32', 'float16'] }, // native C++ WebGPU EP
  'webgpu-jsep': { interleavedRotary: false, localWindow: false, softcap: false, dtypes: ['float32', 'float16'] }, // JS kernels: also no omitted past
  cuda: { interleavedRotary: true, localWindow: true, softcap: true, dtypes: ['float16'] },
});

/** Capabilities of a target; unknown targets get the CPU reference's. */
export function gqaCapabilities(target: string | undefined): GqaCapabilities {
  return GQA_TARGETS[(target ?? 'cpu') as GqaTarget] ?? GQA_TARGETS.cpu;
}
