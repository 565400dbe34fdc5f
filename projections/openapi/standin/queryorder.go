package standin

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
)

// PathQueryOrder is Query Order's path (outgoing.md §2). It is spelled out
// here rather than taken from the client package, so that the stand-in
// checks the client against the documentation, not against itself.
const PathQueryOrder = "/api/mkp-openapi-public/global/v1/order/query"

// Query Order result codes. The code table of Query Order is not published
// (outgoing.md §2.2); these follow the usage push's MKT codes (§9.1) and
// are guesses.
const (
	// CodeSuccess answers a found order (HTTP 200).
	CodeSuccess = "MKT.0000"
	// CodeInvalidParam answers a missing orderId and an unknown order or
	// order line (HTTP 400).
	CodeInvalidParam = "MKT.0101"
)

// Order is an order as Query Order serves it (orderInfo). The documented
// fields are orderId, orderType, createTime, orderLine, buyerInfo and
// extendParams; OrderLine's documented fields are orderLineId,
// chargingMode and expireTime. Every other field name is a guess
// (outgoing.md §2.2 UNCERTAIN).
type Order struct {
	OrderID      string        `json:"orderId"`
	OrderType    string        `json:"orderType"`            // NEW, TRIAL, TRIAL_TO_FORMAL, UNSUBSCRIBE, RENEW, CHANGE
	CreateTime   string        `json:"createTime,omitempty"` // yyyyMMddHHmmss
	OrderLine    []OrderLine   `json:"orderLine"`
	BuyerInfo    *BuyerInfo    `json:"buyerInfo,omitempty"`
	ExtendParams []ExtendParam `json:"extendParams,omitempty"`
	// Extra fields are merged into the served object (and override the
	// fields above): new fields, or odd types, for tolerance tests.
	Extra map[string]any `json:"-"`
}

// OrderLine is one line of an order.
type OrderLine struct {
	OrderLineID  string        `json:"orderLineId"`
	ChargingMode string        `json:"chargingMode"`         // ON_DEMAND, ONE_TIME, PERIOD, ON_DEMAND_PKG
	ExpireTime   string        `json:"expireTime,omitempty"` // yyyyMMddHHmmss, UTC
	PeriodType   string        `json:"periodType,omitempty"` // guess: year, month, day
	PeriodNum    int           `json:"periodNum,omitempty"`  // guess
	ProductInfo  []ProductInfo `json:"productInfo,omitempty"`
	Currency     string        `json:"currency,omitempty"` // guess
	Amount       string        `json:"amount,omitempty"`   // guess: decimal string
	// Extra fields are merged into the served object, as for Order.
	Extra map[string]any `json:"-"`
}

// ProductInfo is the product bought on a line (guessed names).
type ProductInfo struct {
	ProductID   string `json:"productId"`
	SKUCode     string `json:"skuCode"`
	ProductName string `json:"productName,omitempty"`
	LinearValue int    `json:"linearValue,omitempty"`
}

// BuyerInfo is the customer (guessed names beyond "customer information").
type BuyerInfo struct {
	CustomerID   string `json:"customerId"`
	CustomerName string `json:"customerName,omitempty"`
}

// ExtendParam is one key/value extension parameter (guessed names).
type ExtendParam struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// MarshalJSON merges Extra into the object.
func (o Order) MarshalJSON() ([]byte, error) {
	type plain Order
	return withExtra(plain(o), o.Extra)
}

// MarshalJSON merges Extra into the object.
func (l OrderLine) MarshalJSON() ([]byte, error) {
	type plain OrderLine
	return withExtra(plain(l), l.Extra)
}

func withExtra(v any, extra map[string]any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	maps.Copy(m, extra)
	return json.Marshal(m)
}

// clone copies o deeply enough that the copy's slices and maps can be
// changed.
func (o Order) clone() Order {
	o.OrderLine = slices.Clone(o.OrderLine)
	for i := range o.OrderLine {
		o.OrderLine[i].ProductInfo = slices.Clone(o.OrderLine[i].ProductInfo)
		o.OrderLine[i].Extra = maps.Clone(o.OrderLine[i].Extra)
	}
	if o.BuyerInfo != nil {
		b := *o.BuyerInfo
		o.BuyerInfo = &b
	}
	o.ExtendParams = slices.Clone(o.ExtendParams)
	o.Extra = maps.Clone(o.Extra)
	return o
}

// queryOrderAnswer is Query Order's answer body.
type queryOrderAnswer struct {
	ResultCode string `json:"resultCode"`
	ResultMsg  string `json:"resultMsg"`
	OrderInfo  *Order `json:"orderInfo,omitempty"`
}

// queryOrder serves GET PathQueryOrder?orderId=…[&orderLineId=…]: the order
// with only the asked line, 400 CodeInvalidParam for a missing orderId or
// an unknown order or line.
func (s *Server) queryOrder(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	orderID, lineID := q.Get("orderId"), q.Get("orderLineId")
	if orderID == "" {
		writeJSON(w, http.StatusBadRequest, queryOrderAnswer{ResultCode: CodeInvalidParam, ResultMsg: "Invalid parameter: orderId is required."})
		return
	}
	o, ok := s.order(orderID)
	if ok && lineID != "" {
		o.OrderLine = slices.DeleteFunc(o.OrderLine, func(l OrderLine) bool { return l.OrderLineID != lineID })
		ok = len(o.OrderLine) > 0
	}
	if !ok {
		writeJSON(w, http.StatusBadRequest, queryOrderAnswer{ResultCode: CodeInvalidParam, ResultMsg: "Invalid parameter: order not found."})
		return
	}
	writeJSON(w, http.StatusOK, queryOrderAnswer{ResultCode: CodeSuccess, ResultMsg: "Success.", OrderInfo: &o})
}
