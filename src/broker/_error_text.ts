// The message of a caught value, for log lines. Internal.

/** An Error's message, or any other thrown value as a string. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
