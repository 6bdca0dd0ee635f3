/**
 * Polls `probe` until it returns something other than `undefined` or `false`, and returns that
 * value; fails with an error naming `what` once `timeoutMs` has passed. For tests of asynchronous
 * systems (a relay, a subscription, a restarted broker): wait for the state, never for a fixed time.
 *
 * @param probe returns the awaited value, or `undefined` / `false` while it is not there yet
 * @param what what is awaited, for the error message ("the order to be projected")
 */
export async function eventually<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  { timeoutMs = 15_000, intervalMs = 10 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
