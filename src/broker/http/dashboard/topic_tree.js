// Retained topics as a tree: one node per topic level, with the message and a delete button on
// the nodes that hold one.

/**
 * @typedef {{ topic: string, bytes: number, payload?: string, payloadBase64?: string }} Retained
 * @typedef {{ children: Map<string, TreeNode>, message?: Retained }} TreeNode
 */

/**
 * @param {Retained[]} messages
 * @returns {TreeNode} the root
 */
export function buildTree(messages) {
  /** @type {TreeNode} */
  const root = { children: new Map() };
  for (const m of messages) {
    let node = root;
    for (const level of m.topic.split("/")) {
      let child = node.children.get(level);
      if (child === undefined) {
        child = { children: new Map() };
        node.children.set(level, child);
      }
      node = child;
    }
    node.message = m;
  }
  return root;
}

/**
 * Renders the tree as nested lists. A node holding a message carries its topic in `data-topic`
 * and a `button.delete`: the page listens for their clicks on the container.
 *
 * @param {TreeNode} root
 * @returns {HTMLUListElement}
 */
export function renderTree(root) {
  const ul = document.createElement("ul");
  const names = [...root.children.keys()].sort();
  for (const name of names) {
    const node = root.children.get(name);
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "level";
    label.textContent = name === "" ? "(empty)" : name;
    li.append(label);
    if (node.message !== undefined) {
      const m = node.message;
      li.dataset.topic = m.topic;
      const payload = document.createElement("span");
      payload.className = "payload";
      payload.textContent = m.payload !== undefined
        ? JSON.stringify(m.payload.slice(0, 60))
        : `${m.bytes} bytes`;
      const del = document.createElement("button");
      del.type = "button";
      del.className = "danger delete";
      del.textContent = "Delete";
      li.append(payload, del);
    }
    if (node.children.size > 0) li.append(renderTree(node));
    ul.append(li);
  }
  return ul;
}
