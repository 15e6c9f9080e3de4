/** GET /: what this service is, and how to call it. */

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function homePage(origin: string, model: { id: string; version: string; classes: number } | null): string {
  const o = escapeHtml(origin);
  const about = model
    ? `Model <code>${escapeHtml(model.id)}</code> (version ${escapeHtml(model.version)}, ${model.classes} classes).`
    : 'No model is loaded.';
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>ProtoAtlas edge API</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:.75rem;overflow-x:auto}</style></head>
<body>
<h1>ProtoAtlas edge API</h1>
<p>Identifies a bird in a photo and explains the answer with prototypes: parts of training images that the photo looks like ("this looks like that"). ${about}</p>
<h2>Try it</h2>
<pre>curl -s -X POST -H 'Content-Type: image/jpeg' --data-binary @bird.jpg '${o}/classify?top=3&amp;evidence=3'
curl -s -F image=@bird.png '${o}/classify'</pre>
<p>The answer lists the most probable classes; for each, the prototypes that gave it the most points, where they matched in your photo (<code>box</code>, in its pixels) and pictures of the prototypes.</p>
<h2>More</h2>
<ul>
<li><a href="${o}/model">/model</a>: the model card (classes, prototypes, accuracy next to the baseline)</li>
<li><a href="${o}/prototypes/0">/prototypes/0</a>: one prototype, with its pictures</li>
<li><a href="${o}/openapi.json">/openapi.json</a>: the API description</li>
<li><a href="${o}/healthz">/healthz</a></li>
</ul>
</body>
</html>`;
}
