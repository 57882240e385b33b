"""The Admin GraphQL operations boltgate sends to a store, and nothing else.

Shopify's REST Admin API is legacy (new apps must use GraphQL since 2025-04), so every read and
write goes to ``POST https://{shop}/admin/api/{version}/graphql.json`` with the
``X-Shopify-Access-Token`` header. The version is pinned by ``BOLTGATE_SHOPIFY_API_VERSION``.
Scopes needed: ``read_products`` (catalog), ``write_orders`` (``orderCreate``, which also
reads orders back by tag and their fulfilments for tracking).

Query cost: Shopify multiplies nested connections by their ``first`` and refuses a query over
1,000 points, so the catalog reads 10 products x 50 variants a page (about 550 points), not more.

"""

from __future__ import annotations

REQUIRED_SCOPES = ("read_products", "write_orders")

SHOP_INFO = """
query ShopInfo {
  shop { name currencyCode myshopifyDomain }
  currentAppInstallation { accessScopes { handle } }
}
"""

_VARIANT_FIELDS = """
id legacyResourceId title sku price availableForSale inventoryQuantity inventoryPolicy
"""

CATALOG = (
    """
query Catalog($cursor: String) {
  products(first: 10, after: $cursor, query: "status:active") {
    pageInfo { hasNextPage endCursor }
    nodes {
      id legacyResourceId title description handle status
      featuredMedia { preview { image { url } } }
      variants(first: 50) { nodes { """
    + _VARIANT_FIELDS
    + """ } }
    }
  }
}
"""
)

VARIANTS = (
    """
query Variants($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on ProductVariant {
      """
    + _VARIANT_FIELDS
    + """
      product { id legacyResourceId title status }
    }
  }
}
"""
)

ORDER_CREATE = """
mutation OrderCreate($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
  orderCreate(order: $order, options: $options) {
    order { id legacyResourceId name displayFinancialStatus statusPageUrl
            totalPriceSet { shopMoney { amount currencyCode } } }
    userErrors { field message code }
  }
}
"""

FIND_ORDER = """
query FindOrder($query: String!) {
  orders(first: 1, query: $query) {
    nodes { id legacyResourceId name displayFinancialStatus statusPageUrl }
  }
}
"""

ORDER_TRACKING = """
query OrderTracking($id: ID!) {
  order(id: $id) {
    id name displayFulfillmentStatus cancelledAt
    fulfillments(first: 20) {
      id status createdAt deliveredAt
      trackingInfo(first: 10) { company number url }
    }
  }
}
"""
