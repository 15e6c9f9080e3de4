// The parts of autocannon (untyped JavaScript) the benchmark uses.
declare module 'autocannon' {
  interface Histogram {
    p50: number;
    p90: number;
    p99: number;
    average: number;
    max: number;
  }
  interface Result {
    errors: number;
    timeouts: number;
    non2xx: number;
    requests: Histogram & { total: number };
    latency: Histogram;
    duration: number;
  }
  interface Options {
    url: string;
    method?: string;
    body?: Buffer | string;
    headers?: Record<string, string>;
    connections?: number;
    amount?: number;
    timeout?: number;
  }
  function autocannon(opts: Options): Promise<Result>;
  export default autocannon;
}
