import { useEffect, useRef, useState } from 'react';
import { describeError } from './api';

export interface Polled<T> { data: T | null; error: string | null; errorObject: unknown; loading: boolean; at: number | null }

/** Calls `load` now and every `intervalMs` while mounted (again whenever `key` changes). */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, key: string = ''): Polled<T> & { refresh: () => void } {
  const [result, setResult] = useState<Polled<T>>({ data: null, error: null, errorObject: null, loading: true, at: null });
  const loader = useRef(load);
  loader.current = load;
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setResult((previous) => ({ ...previous, loading: true, ...(key ? {} : {}) }));
    const tick = async () => {
      try {
        const data = await loader.current();
        if (!stopped) setResult({ data, error: null, errorObject: null, loading: false, at: Date.now() });
      } catch (error) {
        if (!stopped) setResult((previous) => ({ ...previous, error: describeError(error), errorObject: error, loading: false }));
      }
      if (!stopped) timer = setTimeout(tick, intervalMs);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [intervalMs, key, nonce]);
  return { ...result, refresh: () => setNonce((n) => n + 1) };
}
