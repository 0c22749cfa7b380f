// The gallery's "Studio" tab: what the studio published (GET /api/v1/gallery), and with a
// key your own runs' outputs too, each with its thumbnail (a poster frame for a video)
// and a link to the run that made it.
"use strict";

(() => {
  const { api, root, shortId } = Atelier;
  const EXTENSIONS = { "video/mp4": "mp4", "video/webm": "webm", "image/png": "png", "image/webp": "webp", "image/jpeg": "jpg" };

  Atelier.gallerySources.push({
    id: "studio",
    label: "Studio",
    workflows: false,
    async load(filters, cursor) {
      if (filters.kind && !["image", "video"].includes(filters.kind)) return { items: [], next: null };
      const query = new URLSearchParams({ limit: "24" });
      if (filters.kind) query.set("kind", filters.kind);
      if (cursor) query.set("cursor", cursor);
      const page = await api(`/api/v1/gallery?${query}`);
      return {
        items: page.items.map((item) => {
          const filename = `${item.step}-${shortId(item.artifact_id)}.${EXTENSIONS[item.content_type] || "bin"}`;
          return {
            artifact: {
              id: item.artifact_id, kind: item.kind, url: item.url, filename, content_type: item.content_type,
            },
            preview: item.thumbnail_url
              ? { id: item.artifact_id, kind: "image", url: item.thumbnail_url, filename: `${item.kind} ${filename}` }
              : null,
            href: `${root}/ui/runs/${encodeURIComponent(item.run_id)}`,
            link_text: `run ${shortId(item.run_id)}`,
            workflow: item.step,
            created_at: item.created_at,
          };
        }),
        next: page.next_cursor,
      };
    },
  });
})();
