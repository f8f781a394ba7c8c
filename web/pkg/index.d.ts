// Types of prime-web's API (index.js) and of the records it yields. The record types mirror the
// Rust types of prime-core that serialise them (named in each comment); the package's test
// checks them against records the runtime wrote.

/** Tokens as text (encoded with the model's tokenizer) or as token ids. */
export type Tokens = string | number[];

/** How reveal times are drawn (`SamplingMode`). */
export type SamplingMode = 'ancestral' | 'event_driven';
/** Which masked sub-tokens a step reveals (`RevealPolicy`): the schedule's random times, or
 * the digits the model is sure of (adaptive; at least enough to end within T steps). */
export type RevealPolicy = 'schedule' | { confidence: { threshold: number } } | { entropy: { budget: number } };

/** Which executor runs the sampler's steps (`ExecutorChoice`). */
export type ExecutorChoice = 'auto' | 'host' | 'shader' | 'twin';

/** Sampler knobs (`SamplerSettings`); every key is optional, unknown keys are errors. */
export interface SamplerSettings {
  steps?: number;
  seed?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number | null;
  carry_over?: boolean;
  record_guesses?: boolean;
  mode?: SamplingMode;
  policy?: RevealPolicy;
  /** Classifier-free guidance scale for a generation drawn for a class (0: none). */
  guidance?: number;
}

/** What a generation asks for (`GenerationRequest`); every key is optional: a setting left out
 * is the model's recommendation (`ModelSummary.sampling`), else the official default. */
export interface GenerationRequest {
  prompt?: Tokens;
  suffix?: Tokens;
  /** [position, token id] pairs held fixed. */
  pins?: [number, number][];
  settings?: SamplerSettings;
  executor?: ExecutorChoice;
  sync_states?: boolean;
  /** A class-conditioned model's class: a name, a number as text, or `each` (the class is the
   * seed mod the number of classes). Absent: no class. In a header, the name of the class
   * drawn. */
  class?: string;
}

/** An image model's pixel grid (`ImageShape`). */
export interface ImageShape {
  width: number;
  height: number;
}

/** The model, as a trajectory header describes it (`ModelSummary`). */
export interface ModelSummary {
  model_class: 'PerceiverDIT' | 'DIT';
  vocab_size: number;
  subtokens: number;
  base: number;
  mask_id: number;
  length: number;
  parameters: number;
  tokenizer: boolean;
  image?: ImageShape;
  /** A class-conditioned model's classes, by name (absent for other models). */
  classes?: string[];
  /** The settings the model recommends (its config.json's `sampling`); a request that leaves
   * one of them out gets it. Absent when the model recommends none. */
  sampling?: SamplingDefaults;
}

/** A model's recommended sampler settings (`SamplingDefaults`). */
export interface SamplingDefaults {
  steps?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  guidance?: number;
}

/** The first record of a trajectory (`Header`). */
export interface Header {
  format: 'prime-trajectory';
  version: 1;
  model: ModelSummary;
  /** The request, as given (the class by the name of the class drawn). */
  request: GenerationRequest;
  executor: string;
  device: string;
  /** Whether each position is fixed by the prompt, suffix or pins. */
  fixed: boolean[];
}

/** What a partly revealed token can still become (`PositionCandidates`). */
export interface PositionCandidates {
  position: number;
  count: number;
  /** [token id, probability] pairs, most likely first. */
  top: [number, number][];
}

/** A pixel after a step (`Pixel`): masked (null), partly revealed, or its grey level. */
export type Pixel = null | number | { level: number; lowest: number; highest: number; count: number; known: number };

/** The outcome of a generation (`Outcome`). */
export interface Outcome {
  tokens: number[];
  steps: number;
  nfe: number;
  idle_steps: number;
  masked_at_start: number;
}

/** The last record of a trajectory (`Ending`). */
export interface Ending {
  outcome: Outcome;
  text: string | null;
}

/** One step (`StepRecord`, with the sampler's `StepEvent` flattened into it). */
export interface StepRecord {
  step: number;
  steps: number;
  t: number;
  is_final: boolean;
  /** Every digit after the step, token i's digit j at i·ℓ + j; the mask id marks masks. */
  state: number[];
  revealed: number[];
  /** Under an adaptive policy: the score (digit confidence, or entropy in nats) that chose
   * each of `revealed`. */
  scores?: number[];
  guesses: (number | null)[];
  candidates: PositionCandidates[];
  idle: boolean;
  network_called: boolean;
  nfe: number;
  idle_steps: number;
  /** [token id, text] for the ids this step mentions first. */
  labels: [number, string][];
  read_bytes: number;
  pixels?: Pixel[];
}

/** A step as a {@link Generation} yields it: the record, and the ending after the final step. */
export interface Step extends StepRecord {
  ending: Ending | null;
}

/** A whole trajectory read back. */
export interface Trajectory {
  header: Header;
  steps: StepRecord[];
  ending: Ending;
}

/** A WebGPU adapter (`AdapterReport`). */
export interface AdapterReport {
  name: string;
  api: string;
  device_type: string;
  driver: string;
  limits: [string, number][];
  features: string[];
}

/** The model, its device, how its tensors are cut, and how it was trained. */
export interface ModelInfo {
  model: ModelSummary;
  device: {
    backend: 'wgpu' | 'flex';
    adapter: AdapterReport | null;
    notice: string | null;
    cpu: string;
  };
  blocking: { limit: number | null; head_blocks: number; logits_blocks: number };
  /** The folder's training.json, if any. */
  training: Record<string, unknown> | null;
}

/** A download's or a read's progress. */
export interface Progress {
  file: string;
  loaded: number;
  total: number;
  cached?: boolean;
}

/** A model file given directly. */
export type FileSource = Blob | ArrayBuffer | ArrayBufferView | string;

/** A model folder's files. */
export interface ModelFiles {
  config: FileSource;
  weights: FileSource;
  tokenizer?: FileSource | null;
  training?: FileSource | null;
}

export interface LoadOptions {
  /** `auto` (WebGPU on a hardware adapter, else the CPU), `webgpu` or `cpu`. */
  backend?: 'auto' | 'webgpu' | 'cpu';
  /** Bytes: cut every GPU buffer below this (default: the adapter's limit). */
  maxBinding?: number;
  onProgress?: (progress: Progress) => void;
  /** Keep downloaded files in the Cache API (default true). */
  cache?: boolean;
  /** Where the WebAssembly module is fetched from (default: beside index.js). */
  wasm?: string | URL | Request | Response | BufferSource | WebAssembly.Module;
}

export interface GenerateOptions {
  onStep?: (step: Step) => void;
  signal?: AbortSignal;
}

/** The Cache API store that downloaded model files are kept in. */
export const MODEL_CACHE: string;

/** Initialises the WebAssembly module once. */
export function initialise(wasm?: LoadOptions['wasm']): Promise<unknown>;

/** Loads a model folder from its URL, or from its files. */
export function loadModel(source: string | URL | ModelFiles, options?: LoadOptions): Promise<Model>;

/** Resolves in a task of its own (after the events queued meanwhile). */
export function nextTask(): Promise<void>;

/** Reads a trajectory file's text (JSON Lines), every record checked against its header. */
export function parseTrajectory(text: string): Promise<Trajectory>;

export class Model {
  private constructor();
  info(): ModelInfo;
  start(request: GenerationRequest): Generation;
  steps(request: GenerationRequest, options?: { signal?: AbortSignal }): AsyncGenerator<Step, void, void>;
  /** Resolves to the ending, or null when aborted. */
  generate(request: GenerationRequest, options?: GenerateOptions): Promise<Ending | null>;
  /** Diagnostics: the largest |Δ| against a golden `cases.safetensors`. */
  logitsDeviation(cases: Uint8Array): Promise<number>;
  /** Diagnostics: the WGSL kernels against their twins (WebGPU only). */
  checkKernels(): Promise<{ checks: unknown[] } & Record<string, unknown>>;
}

export class Generation {
  private constructor();
  readonly header: Header;
  step(): Promise<Step>;
  readonly done: boolean;
}
