package openapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/gallerist/gallerist/domain/instance"
)

// PathQueryOrder is Query Order's path (outgoing.md §2).
const PathQueryOrder = "/api/mkp-openapi-public/global/v1/order/query"

// maxIDLen is the documented length of orderId and orderLineId.
const maxIDLen = 64

// QueryOrder asks KooGallery what was bought with an order (outgoing.md
// §2): GET PathQueryOrder?orderId=…[&orderLineId=…], AK/SK-signed. It
// succeeds when the answer is HTTP 200 and carries orderInfo; the order
// line orderLineId (or, without one, the first line) gives the line fields.
// resultCode and resultMsg are always logged, the raw answer on failure.
//
// The published schema stops after the first OrderLine rows, so besides
// the documented fields (orderId, orderType, createTime, orderLine[].
// orderLineId, orderLine[].chargingMode, orderLine[].expireTime) these names
// are guesses, each read where it is first found:
//
//	ProductID    orderLine[].productId, orderLine[].productInfo[0].productId
//	SKUCode      orderLine[].skuCode,   orderLine[].productInfo[0].skuCode
//	PeriodType   orderLine[].periodType (e.g. "year", "month", "day")
//	PeriodNumber orderLine[].periodNum, orderLine[].periodNumber
//	CustomerID   buyerInfo.customerId, orderInfo.customerId
//
// chargingMode and expireTime are also read at order level when the line
// lacks them. Times are yyyyMMddHHmmss[SSS] in UTC (createTime's zone is
// undocumented; UTC is assumed). Trial is orderType TRIAL. Raw keeps the
// answer's orderInfo as received, so nothing is lost to a wrong guess.
//
// Errors: ErrInvalidRequest for bad arguments; an error wrapping
// ErrTransport when no host answered; *APIError for any other answer (see
// (*APIError).Temporary).
func (c *Client) QueryOrder(ctx context.Context, orderID, orderLineID string) (instance.OrderInfo, error) {
	switch {
	case orderID == "":
		return instance.OrderInfo{}, fmt.Errorf("%w: query order: orderId is required", ErrInvalidRequest)
	case len(orderID) > maxIDLen || len(orderLineID) > maxIDLen:
		return instance.OrderInfo{}, fmt.Errorf("%w: query order: orderId and orderLineId are at most %d characters", ErrInvalidRequest, maxIDLen)
	}
	q := url.Values{"orderId": {orderID}}
	if orderLineID != "" {
		q.Set("orderLineId", orderLineID)
	}
	log := c.log.With("api", string(APIQueryOrder), "orderId", orderID, "orderLineId", orderLineID)
	a, err := c.do(ctx, call{api: APIQueryOrder, method: http.MethodGet, path: PathQueryOrder, query: q})
	if err != nil {
		log.Warn("query order failed", "err", err)
		return instance.OrderInfo{}, err
	}
	fail := func(ae *APIError) (instance.OrderInfo, error) {
		log.Warn("query order failed", "host", a.host, "status", ae.HTTPStatus, "resultCode", ae.ResultCode,
			"resultMsg", ae.ResultMsg, "temporary", ae.Temporary(), "cause", ae.Err, "raw", logged(a.body))
		return instance.OrderInfo{}, ae
	}
	if a.status != http.StatusOK {
		return fail(apiErrorOf(APIQueryOrder, a, nil))
	}
	top, ok := parseObject(a.body)
	if !ok {
		return fail(apiErrorOf(APIQueryOrder, a, fmt.Errorf("%w: body is not a JSON object", ErrMalformedAnswer)))
	}
	ae := apiErrorOf(APIQueryOrder, a, nil)
	if !top.has("orderInfo") {
		return fail(ae)
	}
	raw := bytes.TrimSpace(top["orderInfo"])
	o, ok := parseObject(raw)
	if !ok {
		ae.Err = fmt.Errorf("%w: orderInfo is not an object", ErrMalformedAnswer)
		return fail(ae)
	}
	info, notes := decodeOrderInfo(o, orderLineID)
	switch {
	case info.OrderID == "":
		info.OrderID = orderID
		notes = append(notes, "orderInfo has no orderId; using the one asked for")
	case info.OrderID != orderID:
		ae.Err = fmt.Errorf("%w: answer is about order %q", ErrUnexpectedAnswer, info.OrderID)
		return fail(ae)
	}
	info.Raw = bytes.Clone(raw)
	level := slog.LevelInfo
	if len(notes) > 0 {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "order queried", "host", a.host, "resultCode", ae.ResultCode, "resultMsg", ae.ResultMsg,
		"orderType", info.OrderType, "chargingMode", info.ChargingMode, "notes", notes)
	return info, nil
}

// decodeOrderInfo maps a loosely read orderInfo to instance.OrderInfo (see
// QueryOrder for the field names); notes say what could not be read.
func decodeOrderInfo(o object, orderLineID string) (instance.OrderInfo, []string) {
	var notes []string
	info := instance.OrderInfo{
		OrderID:     o.str("orderId"),
		OrderLineID: orderLineID,
		OrderType:   o.str("orderType"),
	}
	info.Trial = info.OrderType == "TRIAL"
	if s := o.str("createTime"); s != "" {
		if t, ok := parseTime(s); ok {
			info.CreateTime = t
		} else {
			notes = append(notes, fmt.Sprintf("unreadable createTime %q", s))
		}
	}
	line := pickLine(o.objs("orderLine", "orderLines"), orderLineID)
	if line == nil {
		notes = append(notes, "no matching orderLine")
		line = object{}
	}
	if info.OrderLineID == "" {
		info.OrderLineID = line.str("orderLineId")
	}
	info.ChargingMode = firstNonEmpty(line.str("chargingMode"), o.str("chargingMode"))
	if s := firstNonEmpty(line.str("expireTime"), o.str("expireTime")); s != "" {
		if t, ok := parseTime(s); ok {
			info.ExpireTime = t
		} else {
			notes = append(notes, fmt.Sprintf("unreadable expireTime %q", s))
		}
	}
	info.PeriodType = line.str("periodType")
	if n, ok := line.int("periodNum", "periodNumber"); ok {
		info.PeriodNumber = n
	}
	product := line.obj("productInfo", "productInfos")
	info.ProductID = firstNonEmpty(line.str("productId"), product.str("productId"))
	info.SKUCode = firstNonEmpty(line.str("skuCode"), product.str("skuCode"))
	info.CustomerID = firstNonEmpty(o.obj("buyerInfo").str("customerId"), o.str("customerId"))
	return info, notes
}

// pickLine returns the line with orderLineID; without one asked for, the
// first line; a single line without an id of its own is taken as the one
// asked for. nil when none fits.
func pickLine(lines []object, orderLineID string) object {
	if len(lines) == 0 {
		return nil
	}
	if orderLineID == "" {
		return lines[0]
	}
	for _, l := range lines {
		if l.str("orderLineId") == orderLineID {
			return l
		}
	}
	if len(lines) == 1 && lines[0].str("orderLineId") == "" {
		return lines[0]
	}
	return nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
