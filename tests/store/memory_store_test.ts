// The store conformance suite on the in-memory store.
import { MemoryStore } from "../../src/store/memory_store.ts";
import { storeConformance } from "./_conformance.ts";

storeConformance("MemoryStore", () => {
  const store = new MemoryStore();
  return Promise.resolve({ store, cleanup: (s) => s.close() });
});
