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
    const url = new URL(`./dashboard/${name}`, import.meta.url);
    if (url.protocol === "file:") {
      // Deno.readFile also reads the files `deno compile --include` embeds.
      body = await Deno.readFile(url);
    } else {
      // Loaded from JSR: the files are beside the module, over https.
      const response = await fetch(url);
      if (!response.ok) {
        await response.body?.cancel();
        return undefined;
      }
      body = new Uint8Array(await response.arrayBuffer());
    }
    cache.set(name, body);
  }
  return new Response(body as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": type, "cache-control": "no-cache" },
  });
}
