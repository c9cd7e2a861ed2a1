/**
 * Topics: name and filter validation (MQTT §4.7), shared subscription filters (§4.8.2), matching,
 * the subscription tree and the retained message store. Pure code, no I/O.
 *
 * @module
 */

export { validateTopicName } from "./validate_topic_name.ts";
export { validateTopicFilter } from "./validate_topic_filter.ts";
export { parseSharedFilter, SHARED_PREFIX, type SharedFilter } from "./shared_filter.ts";
export { matchTopic } from "./match_topic.ts";
export type { QoS } from "../packet/constants.ts";
export { type Delivery, dropNoLocal, type SubscriptionOptions } from "./delivery.ts";
export {
  type ShareStrategy,
  type SubscriptionEntry,
  SubscriptionTree,
  type SubscriptionTreeOptions,
} from "./subscription_tree.ts";
export { type RetainedCursor, RetainedStore } from "./retained_store.ts";
export { exceedsTopicLevels } from "./topic_levels.ts";
export { exceedsTopicLength, MAX_TOPIC_LENGTH } from "./topic_length.ts";
