/**
 * The dashboard's files (`dashboard/`), served as they are: plain HTML, CSS and ES modules, no
 * build step. Only the files listed here are served; each is read once and kept.
 *
 * @module
 */

const TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "api.js": "text/javascript; charset=utf-8",
  "chart.js": "text/javascript; charset=utf-8",
  "topic_tree.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};

const cache = new Map<string, Uint8Array>();

/**
 * The response for a dashboard file.
 *
 * @param name the file name under `/dashboard/`
 * @returns the response, or undefined when there is no such file
 */
export async function serveDashboardFile(name: string): Promise<Response | undefined> {
  const type = TYPES[name];
  if (type === undefined) return undefined;
  let body = cache.get(name);
  if (body === undefined) {
    // fetch reads file: and https: URLs alike, so this works from a checkout and from JSR.
    const response = await fetch(new URL(`./dashboard/${name}`, import.meta.url));
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    body = new Uint8Array(await response.arrayBuffer());
    cache.set(name, body);
  }
  return new Response(body as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": type, "cache-control": "no-cache" },
  });
}
