/**
 * Work a cluster node starts and nobody awaits (a claim's answer, a take, a check after
 * reconnecting): its rejection, whether the work failed or one of its callbacks threw on data it
 * did not expect, is reported with what the work was, never left unhandled. An unhandled
 * rejection ends the process (the CLI shuts the broker down on one, see ARCHITECTURE.md "Faults"):
 * each chain started in the background ends here.
 *
 * @module
 */

/** Where a background failure goes: the log, with `what` failed. */
export type FaultReport = (what: string, error: unknown) => void;

/**
 * Lets `work` run in the background, its rejection reported.
 *
 * @param work the promise nobody awaits
 * @param what what it does, for the report ("the check of the store's data")
 * @param report where the failure goes
 */
export function background(work: Promise<unknown>, what: string, report: FaultReport): void {
  work.catch((error) => {
    try {
      report(what, error);
    } catch {
      // The report itself failed (a broken logger): nothing else to tell it to.
    }
  });
}
